pub struct Counter;

impl Counter {
    #[rmi::nonblocking]
    pub fn get(&self) -> u64 {
        1
    }
}

fn main() {}
