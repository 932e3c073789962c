pub struct Greeter;

#[rmi::expose]
impl Greeter {
    fn private(&self) -> u32 {
        1
    }

    pub fn new() -> Self {
        Greeter
    }
}

fn main() {}
