pub struct Store;

#[rmi::expose]
impl Store {
    pub fn consume(self) -> u32 {
        1
    }
}

fn main() {}
