//! Generated code names everything by absolute path: it compiles without
//! the prelude and with rmi under another name.

// The exposed methods are `pub` (that is what #[expose] serves) on a type
// that a test keeps crate-private.
#![allow(unreachable_pub)]

extern crate rmi as renamed_rmi;

mod bare {
    #![no_implicit_prelude]

    pub(crate) struct Thing;

    #[::renamed_rmi::expose(crate = ::renamed_rmi)]
    impl Thing {
        pub fn double(&self, x: u32) -> u32 {
            x * 2
        }

        #[::renamed_rmi::nonblocking]
        pub fn triple(&self, x: u32) -> u32 {
            x * 3
        }

        pub async fn later(&self, x: ::std::string::String) -> ::std::string::String {
            x
        }

        pub fn fallible(&self) -> ::std::result::Result<u8, ::std::string::String> {
            ::std::result::Result::Ok(1)
        }

        #[::renamed_rmi::oneway]
        pub fn note(&self) {}
    }

    #[::renamed_rmi::expose(crate = ::renamed_rmi)]
    pub(crate) trait Shape {
        fn area(&self) -> f64;
        async fn name(&self) -> ::std::string::String;
    }
}

struct Square;

impl bare::Shape for Square {
    fn area(&self) -> f64 {
        4.0
    }

    async fn name(&self) -> String {
        "square".into()
    }
}

#[tokio::test]
async fn generated_code_works_without_the_prelude_and_renamed() {
    let daemon = renamed_rmi::Daemon::builder_with_config(&renamed_rmi::Config::default())
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let thing = daemon.register(bare::Thing, None).unwrap();
    let shape = daemon.register(bare::ShapeObject(Square), None).unwrap();
    let serving = tokio::spawn({
        let daemon = daemon.clone();
        async move { daemon.serve().await }
    });
    let thing = bare::ThingProxy::new(&thing).unwrap();
    assert_eq!(thing.double(21).await.unwrap(), 42);
    assert_eq!(thing.triple(14).await.unwrap(), 42);
    assert_eq!(thing.later("x".into()).await.unwrap(), "x");
    assert_eq!(thing.fallible().await.unwrap(), 1);
    thing.note().await.unwrap();
    let shape = bare::ShapeProxy::new(&shape).unwrap();
    assert_eq!(shape.area().await.unwrap(), 4.0);
    assert_eq!(shape.name().await.unwrap(), "square");
    daemon.shutdown();
    serving.await.unwrap().unwrap();
}
