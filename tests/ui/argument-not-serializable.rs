pub struct Plain {
    pub x: u32,
}

pub struct Store;

#[rmi::expose]
impl Store {
    pub fn put(&self, value: Plain) -> u32 {
        value.x
    }
}

fn main() {}
