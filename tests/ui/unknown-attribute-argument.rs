pub struct Greeter;

#[rmi::expose(proxy = "Other")]
impl Greeter {
    pub fn greet(&self) -> String {
        "hi".into()
    }
}

fn main() {}
