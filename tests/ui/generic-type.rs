pub struct Store<T>(T);

#[rmi::expose]
impl<T: Send + Sync + 'static> Store<T> {
    pub fn size(&self) -> u32 {
        1
    }
}

fn main() {}
