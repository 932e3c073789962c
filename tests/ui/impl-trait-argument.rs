pub struct Greeter;

#[rmi::expose]
impl Greeter {
    pub fn greet(&self, name: impl Into<String>) -> String {
        name.into()
    }
}

fn main() {}
