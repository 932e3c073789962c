pub struct Store;

#[rmi::expose]
impl Store {
    pub fn a<T>(&self, x: T) -> u32 {
        let _ = x;
        1
    }

    pub fn b(&mut self) {}

    #[rmi::oneway]
    pub fn c(&self) -> u32 {
        1
    }
}

fn main() {}
