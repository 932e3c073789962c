pub struct Store;

#[rmi::expose]
impl Store {
    pub fn put<T: serde::Serialize>(&self, value: T) -> u32 {
        let _ = value;
        1
    }
}

fn main() {}
