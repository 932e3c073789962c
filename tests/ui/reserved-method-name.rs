pub struct Link;

#[rmi::expose]
impl Link {
    pub fn connect(&self, to: String) -> bool {
        !to.is_empty()
    }
}

fn main() {}
