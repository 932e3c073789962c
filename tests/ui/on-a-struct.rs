#[rmi::expose]
pub struct Greeter;

fn main() {}
