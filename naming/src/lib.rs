//! rmi's naming. Thin for now: its issue builds it on `rmi-core`.
