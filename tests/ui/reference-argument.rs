pub struct Greeter;

#[rmi::expose]
impl Greeter {
    pub fn greet(&self, name: &str) -> String {
        format!("Hi {name}")
    }
}

fn main() {}
