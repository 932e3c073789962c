pub struct Raw;

#[rmi::expose]
impl Raw {
    pub unsafe fn peek(&self, address: usize) -> u8 {
        let _ = address;
        0
    }
}

fn main() {}
