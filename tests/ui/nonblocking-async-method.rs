pub struct Counter;

#[rmi::expose]
impl Counter {
    #[rmi::nonblocking]
    pub async fn get(&self) -> u64 {
        1
    }
}

fn main() {}
