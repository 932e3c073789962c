pub struct Plain;

pub struct Store;

#[rmi::expose]
impl Store {
    pub fn get(&self) -> Plain {
        Plain
    }
}

fn main() {}
