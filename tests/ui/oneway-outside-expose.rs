pub struct Log;

impl Log {
    #[rmi::oneway]
    pub fn write(&self, line: String) {
        let _ = line;
    }
}

fn main() {}
