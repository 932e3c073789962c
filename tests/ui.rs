//! Every form `#[expose]` refuses gets an error on the user's code that
//! says what to do (one case per file in `tests/ui/`).

#[test]
fn expose_refuses_what_it_cannot_serve() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
