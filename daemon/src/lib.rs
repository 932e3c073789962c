//! rmi's daemon. Thin for now: its issue builds it on `rmi-core`.
