#![deny(unused_must_use)]

pub struct Greeter;

#[rmi::expose]
impl Greeter {
    pub fn greet(&self) -> String {
        "hi".into()
    }
}

async fn forget(proxy: GreeterProxy) {
    // The call does nothing until awaited.
    proxy.greet();
}

fn main() {
    let _ = forget;
}
