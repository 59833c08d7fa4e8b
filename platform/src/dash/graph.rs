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

/// The callback graph laid out for drawing (the app page's SVG): props on the left feed
/// callbacks, which write props further right; columns by longest path from a prop no
/// callback writes. Bounded: at most [`MAX_DRAWN_CALLBACKS`] callbacks are drawn.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Drawing {
    /// Width and height of the picture.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Boxes: props and callbacks.
    pub nodes: Vec<DrawnNode>,
    /// Arrows between them.
    pub edges: Vec<DrawnEdge>,
    /// Callbacks in the app.
    pub callbacks: usize,
    /// Callbacks left out of the picture (over the bound).
    pub left_out: usize,
    /// Each drawn callback in words, for who does not see the picture.
    pub sentences: Vec<String>,
}

/// One box.
#[derive(Clone, Debug, PartialEq)]
pub struct DrawnNode {
    /// Its corner.
    pub x: u32,
    /// Its corner.
    pub y: u32,
    /// Its label, cut to fit.
    pub label: String,
    /// The whole name (the box's tooltip).
    pub full: String,
    /// A callback rather than a prop.
    pub callback: bool,
}

/// One arrow, as an SVG path.
#[derive(Clone, Debug, PartialEq)]
pub struct DrawnEdge {
    /// The path's `d`.
    pub path: String,
    /// From a `State` (drawn dashed): read, but does not trigger the callback.
    pub state: bool,
}

/// At most this many callbacks are drawn.
pub const MAX_DRAWN_CALLBACKS: usize = 60;
/// A box's size and the gaps between columns and rows.
pub const NODE_WIDTH: u32 = 200;
const NODE_HEIGHT: u32 = 28;
const COLUMN: u32 = 260;
const ROW: u32 = 40;
const MARGIN: u32 = 10;
const LABEL_CHARS: usize = 28;

/// Lay out the graph of `dependencies`.
pub fn drawing(dependencies: &Dependencies) -> Drawing {
    let mut callbacks: Vec<&Callback> = dependencies.iter().collect();
    callbacks.sort_by(|a, b| a.output.cmp(&b.output));
    let total = callbacks.len();
    callbacks.truncate(MAX_DRAWN_CALLBACKS);
    // Columns: a prop no drawn callback writes is in column 0; a callback one right of the
    // furthest prop it reads (not counting a prop it writes itself); a written prop one
    // right of the furthest callback writing it. The deploy check refused cycles, and the
    // passes are bounded anyway.
    let written: std::collections::HashSet<String> = callbacks
        .iter()
        .flat_map(|c| c.outputs.iter().map(name))
        .collect();
    let mut prop_column: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    let mut callback_column = vec![1u32; callbacks.len()];
    for _ in 0..=callbacks.len() {
        let mut moved = false;
        for (i, callback) in callbacks.iter().enumerate() {
            let own: Vec<String> = callback.outputs.iter().map(name).collect();
            let reads = callback.inputs.iter().chain(&callback.state).map(name);
            let column = reads
                .filter(|prop| !own.contains(prop))
                .map(|prop| prop_column.get(&prop).copied().unwrap_or(0) + 1)
                .max()
                .unwrap_or(1)
                .max(1);
            if column != callback_column[i] {
                callback_column[i] = column;
                moved = true;
            }
            for output in own {
                let at = prop_column.entry(output).or_insert(0);
                if *at < column + 1 {
                    *at = column + 1;
                    moved = true;
                }
            }
        }
        if !moved {
            break;
        }
    }
    let mut rows: std::collections::HashMap<u32, u32> = std::collections::HashMap::new();
    let mut place = |column: u32| {
        let row = rows.entry(column).or_insert(0);
        let at = (MARGIN + column * COLUMN, MARGIN + *row * ROW);
        *row += 1;
        at
    };
    let mut drawing = Drawing {
        callbacks: total,
        left_out: total - callbacks.len(),
        ..Drawing::default()
    };
    let mut prop_at: std::collections::HashMap<String, (u32, u32)> =
        std::collections::HashMap::new();
    let cut = |text: &str| {
        if text.chars().count() <= LABEL_CHARS {
            text.to_owned()
        } else {
            let head: String = text.chars().take(LABEL_CHARS - 1).collect();
            format!("{head}…")
        }
    };
    // Props first, column by column, so each column's boxes stack in name order.
    let mut props: Vec<(u32, String)> = callbacks
        .iter()
        .flat_map(|c| c.inputs.iter().chain(&c.state).chain(&c.outputs))
        .map(name)
        .map(|prop| {
            let column = if written.contains(&prop) {
                prop_column.get(&prop).copied().unwrap_or(2)
            } else {
                0
            };
            (column, prop)
        })
        .collect();
    props.sort();
    props.dedup();
    for (column, prop) in props {
        let (x, y) = place(column);
        prop_at.insert(prop.clone(), (x, y));
        drawing.nodes.push(DrawnNode {
            x,
            y,
            label: cut(&prop),
            full: prop,
            callback: false,
        });
    }
    let arrow = |from: (u32, u32), to: (u32, u32)| {
        let (x1, y1) = (from.0 + NODE_WIDTH, from.1 + NODE_HEIGHT / 2);
        let (x2, y2) = (to.0, to.1 + NODE_HEIGHT / 2);
        format!(
            "M{x1} {y1} C{} {y1} {} {y2} {x2} {y2}",
            x1 + 30,
            x2.saturating_sub(30)
        )
    };
    for (i, callback) in callbacks.iter().enumerate() {
        let (x, y) = place(callback_column[i]);
        let kind = if callback.clientside {
            "clientside callback"
        } else if callback.background.is_some() {
            "background callback"
        } else {
            "callback"
        };
        let outputs: Vec<String> = callback.outputs.iter().map(name).collect();
        let label = match outputs.first() {
            Some(first) if outputs.len() > 1 => format!("{kind} → {first} +{}", outputs.len() - 1),
            Some(first) => format!("{kind} → {first}"),
            None => kind.to_owned(),
        };
        drawing.nodes.push(DrawnNode {
            x,
            y,
            label: cut(&label),
            full: format!("{kind}: {}", callback.output),
            callback: true,
        });
        let reads = |props: &[PropRef]| props.iter().map(name).collect::<Vec<_>>();
        let (inputs, state) = (reads(&callback.inputs), reads(&callback.state));
        for (props, is_state) in [(&inputs, false), (&state, true)] {
            for prop in props {
                if let Some(&from) = prop_at.get(prop)
                    && from.0 < x
                {
                    drawing.edges.push(DrawnEdge {
                        path: arrow(from, (x, y)),
                        state: is_state,
                    });
                }
            }
        }
        for prop in &outputs {
            if let Some(&to) = prop_at.get(prop)
                && to.0 > x
            {
                drawing.edges.push(DrawnEdge {
                    path: arrow((x, y), to),
                    state: false,
                });
            }
        }
        let list = |names: &[String]| {
            if names.is_empty() {
                "nothing".to_owned()
            } else {
                names.join(", ")
            }
        };
        let mut sentence = format!(
            "A {kind} reads {} and writes {}",
            list(&inputs),
            list(&outputs)
        );
        if !state.is_empty() {
            sentence.push_str(&format!(" (state: {})", state.join(", ")));
        }
        drawing.sentences.push(sentence);
    }
    drawing.width = drawing
        .nodes
        .iter()
        .map(|n| n.x + NODE_WIDTH + MARGIN)
        .max()
        .unwrap_or(0);
    drawing.height = drawing
        .nodes
        .iter()
        .map(|n| n.y + NODE_HEIGHT + MARGIN)
        .max()
        .unwrap_or(0);
    drawing
}
