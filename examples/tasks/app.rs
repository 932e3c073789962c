//! The task functions workers can run, by name: the role of the Celery
//! app module that defines `@app.task def add(x, y)`.

/// The names of the tasks, as clients send them.
pub(crate) const ADD: &str = "add";

/// Runs task `name` with `args`.
///
/// # Errors
///
/// An unknown task, wrong arguments, or an overflow.
pub(crate) fn run(name: &str, args: &[i64]) -> Result<i64, String> {
    match (name, args) {
        (ADD, [x, y]) => x.checked_add(*y).ok_or_else(|| format!("add({x}, {y}) overflows")),
        (ADD, _) => Err(format!("add takes 2 arguments, not {}", args.len())),
        _ => Err(format!("no task named {name:?}")),
    }
}
