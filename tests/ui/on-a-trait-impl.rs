pub trait Greet {
    fn greet(&self) -> String;
}

pub struct Greeter;

#[rmi::expose]
impl Greet for Greeter {
    fn greet(&self) -> String {
        "hi".into()
    }
}

fn main() {}
