//! rmi's `#[expose]` and `#[oneway]` attributes. Thin for now: the macro
//! issue builds them.
