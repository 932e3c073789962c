pub struct Log;

#[rmi::expose]
impl Log {
    #[rmi::oneway]
    pub fn write(&self, line: String) -> usize {
        line.len()
    }
}

fn main() {}
