pub struct Greeter;

#[rmi::expose]
impl Greeter {
    pub fn greet(&self) -> impl std::fmt::Display {
        "hi"
    }
}

fn main() {}
