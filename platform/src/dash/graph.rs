//! The callback graph of an app version, checked at deploy: no two callbacks may write
//! the same output unless one of them says `allow_duplicate`, and no chain of callbacks
//! may lead back to where it started.
//!
//! Pure: it looks only at the parsed [`Dependencies`]. Ids are compared the way Dash
//! compares dependencies, so a `MATCH` or `ALL` pattern overlaps every concrete id it
//! could stand for. A callback that reads a prop it also writes is allowed, as in Dash.

use super::dependencies::{Callback, Dependencies, PropRef};
use super::pattern;

/// Why an app's callbacks cannot be served.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GraphError {
    /// Two callbacks (or one callback twice) write the same output.
    #[error(
        "callbacks `{first}` and `{second}` both write `{output}`; Dash allows one callback \
         per output unless the output says allow_duplicate"
    )]
    DuplicateOutput {
        /// The output both write, as Dash prints it.
        output: String,
        /// One callback id.
        first: String,
        /// The other callback id (the same as `first` when one callback lists it twice).
        second: String,
    },
    /// Callbacks feed each other in a circle; the ids in order, the first repeated last.
    #[error("circular callback dependency: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
}

/// Check the whole graph; the first problem found, in callback-id order, is the error.
pub fn check(dependencies: &Dependencies) -> Result<(), GraphError> {
    let mut callbacks: Vec<&Callback> = dependencies.iter().collect();
    callbacks.sort_by(|a, b| a.output.cmp(&b.output));
    check_duplicates(&callbacks)?;
    check_cycles(&callbacks)
}

fn same_prop(a: &PropRef, b: &PropRef) -> bool {
    a.property == b.property && pattern::overlaps(&a.id, &b.id)
}

fn name(prop: &PropRef) -> String {
    format!("{}.{}", pattern::stringify(&prop.id), prop.property)
}

fn check_duplicates(callbacks: &[&Callback]) -> Result<(), GraphError> {
    // Every output with its callback and whether it allows duplicates.
    let outputs: Vec<(&Callback, &PropRef, bool)> = callbacks
        .iter()
        .flat_map(|callback| {
            callback.outputs.iter().enumerate().map(move |(i, output)| {
                let allowed = callback.allow_duplicate.get(i).copied().unwrap_or(false);
                (*callback, output, allowed)
            })
        })
        .collect();
    for (i, (first, a, a_allowed)) in outputs.iter().enumerate() {
        for (second, b, b_allowed) in &outputs[i + 1..] {
            if !a_allowed && !b_allowed && same_prop(a, b) {
                return Err(GraphError::DuplicateOutput {
                    output: name(a),
                    first: first.output.clone(),
                    second: second.output.clone(),
                });
            }
        }
    }
    Ok(())
}

fn check_cycles(callbacks: &[&Callback]) -> Result<(), GraphError> {
    // Edge a -> b when a writes a prop b reads (as an input: state does not trigger).
    let edges: Vec<Vec<usize>> = callbacks
        .iter()
        .enumerate()
        .map(|(from, writer)| {
            callbacks
                .iter()
                .enumerate()
                .filter(|&(to, reader)| {
                    to != from
                        && writer.outputs.iter().any(|output| {
                            reader.inputs.iter().any(|input| same_prop(output, input))
                        })
                })
                .map(|(to, _)| to)
                .collect()
        })
        .collect();

    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    let mut marks = vec![Mark::New; callbacks.len()];
    for start in 0..callbacks.len() {
        if marks[start] != Mark::New {
            continue;
        }
        // Iterative depth-first search; `path` holds (node, next edge to follow).
        let mut path: Vec<(usize, usize)> = vec![(start, 0)];
        marks[start] = Mark::OnPath;
        while let Some(&mut (node, ref mut next)) = path.last_mut() {
            let Some(&to) = edges[node].get(*next) else {
                marks[node] = Mark::Done;
                path.pop();
                continue;
            };
            *next += 1;
            match marks[to] {
                Mark::New => {
                    marks[to] = Mark::OnPath;
                    path.push((to, 0));
                }
                Mark::OnPath => {
                    let mut cycle: Vec<String> = path
                        .iter()
                        .skip_while(|(on_path, _)| *on_path != to)
                        .map(|(on_path, _)| callbacks[*on_path].output.clone())
                        .collect();
                    cycle.push(callbacks[to].output.clone());
                    return Err(GraphError::Cycle(cycle));
                }
                Mark::Done => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deps(entries: serde_json::Value) -> Dependencies {
        Dependencies::parse(&entries.to_string()).expect("valid dependency list")
    }

    fn cb(output: &str, inputs: &[(&str, &str)]) -> serde_json::Value {
        let inputs: Vec<_> = inputs
            .iter()
            .map(|(id, property)| json!({"id": id, "property": property}))
            .collect();
        json!({"output": output, "inputs": inputs, "state": []})
    }

    #[test]
    fn chains_and_self_loops_are_accepted() {
        let graph = deps(json!([
            cb("b.value", &[("a", "value")]),
            cb("c.value", &[("b", "value")]),
            cb("..d.value...a.title..", &[("c", "value"), ("d", "value")]),
        ]));
        assert_eq!(check(&graph), Ok(()));
    }

    #[test]
    fn a_cycle_is_refused_naming_its_callbacks() {
        let graph = deps(json!([
            cb("b.value", &[("a", "value")]),
            cb("c.value", &[("b", "value")]),
            cb("a.value", &[("c", "value")]),
            cb("x.children", &[("y", "value")]),
        ]));
        assert_eq!(
            check(&graph),
            Err(GraphError::Cycle(vec![
                "a.value".into(),
                "b.value".into(),
                "c.value".into(),
                "a.value".into()
            ]))
        );
    }

    #[test]
    fn a_cycle_through_patterns_is_refused() {
        let graph = deps(json!([
            cb(
                r#"{"index":["MATCH"],"type":"f"}.value"#,
                &[("total", "children")]
            ),
            cb(
                "total.children",
                &[(r#"{"index":["ALL"],"type":"f"}"#, "value")]
            ),
        ]));
        assert!(matches!(check(&graph), Err(GraphError::Cycle(cycle)) if cycle.len() == 3));
    }

    #[test]
    fn duplicate_outputs_are_refused_naming_both_callbacks() {
        let graph = deps(json!([
            cb("out.children", &[("a", "n_clicks")]),
            cb("..out.children...other.value..", &[("b", "n_clicks")]),
        ]));
        assert_eq!(
            check(&graph),
            Err(GraphError::DuplicateOutput {
                output: "out.children".into(),
                first: "..out.children...other.value..".into(),
                second: "out.children".into(),
            })
        );
        let patterns = deps(json!([
            cb(
                r#"{"index":["MATCH"],"type":"l"}.children"#,
                &[("a", "value")]
            ),
            cb(r#"{"index":3,"type":"l"}.children"#, &[("b", "value")]),
        ]));
        assert!(matches!(
            check(&patterns),
            Err(GraphError::DuplicateOutput { .. })
        ));
    }

    #[test]
    fn allow_duplicate_lets_a_second_callback_write_an_output() {
        let graph = deps(json!([
            cb("out.children", &[("a", "n_clicks")]),
            cb("out.children@0f3a", &[("b", "n_clicks")]),
        ]));
        assert_eq!(check(&graph), Ok(()));
    }
}
