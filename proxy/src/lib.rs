//! rmi's proxy. Thin for now: its issue builds it on `rmi-core`.
