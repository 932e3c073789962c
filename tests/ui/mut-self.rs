pub struct Counter {
    n: u32,
}

#[rmi::expose]
impl Counter {
    pub fn bump(&mut self) -> u32 {
        self.n += 1;
        self.n
    }
}

fn main() {}
