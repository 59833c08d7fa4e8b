//! Partial updates of an output (Dash's `Patch`): instead of resending a whole list or
//! dictionary, a callback returns the operations the browser applies to the value it
//! already holds.
//!
//! A [`Patch`] serialises exactly as Dash's does, `{"__dash_patch_update":
//! "__dash_patch_update", "operations": [{"operation", "location", "params"}, …]}`, so the
//! stock renderer applies it. Return one as an output value:
//!
//! ```
//! use sdk::Patch;
//! use serde_json::json;
//!
//! let mut patch = Patch::new();
//! patch.append("a new row");
//! patch.at("layout").at("title").assign("text", "Updated");
//! patch.at("data").at(0).at("y").extend([4, 5]);
//! let wire = serde_json::to_value(&patch).unwrap();
//! assert_eq!(wire["operations"][1],
//!            json!({"operation": "Assign", "location": ["layout", "title", "text"],
//!                   "params": {"value": "Updated"}}));
//! ```

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

/// One step of a location: a dictionary key or a list index (negative counts from the end,
/// as in Python).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathKey {
    /// A dictionary key.
    Key(String),
    /// A list index.
    Index(i64),
}

impl From<&str> for PathKey {
    fn from(key: &str) -> Self {
        PathKey::Key(key.to_owned())
    }
}

impl From<String> for PathKey {
    fn from(key: String) -> Self {
        PathKey::Key(key)
    }
}

macro_rules! index_keys {
    ($($int:ty),*) => {$(
        impl From<$int> for PathKey {
            fn from(index: $int) -> Self {
                PathKey::Index(i64::from(index))
            }
        }
    )*};
}
index_keys!(i8, i16, i32, i64, u8, u16, u32);

impl From<usize> for PathKey {
    fn from(index: usize) -> Self {
        PathKey::Index(i64::try_from(index).unwrap_or(i64::MAX))
    }
}

impl From<&PathKey> for Value {
    fn from(key: &PathKey) -> Self {
        match key {
            PathKey::Key(key) => Value::String(key.clone()),
            PathKey::Index(index) => Value::from(*index),
        }
    }
}

/// A write-only proxy of an output's value in the browser: the operations to apply to it,
/// in order. See the [module](self) documentation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Patch {
    operations: Vec<Value>,
}

/// A place inside a [`Patch`]'s value, from [`Patch::at`]: operations on it apply there.
#[derive(Debug)]
pub struct PatchAt<'p> {
    patch: &'p mut Patch,
    location: Vec<PathKey>,
}

/// Values that are not JSON (a map with non-string keys) become null, as `None` would.
fn json(value: impl Serialize) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

impl PatchAt<'_> {
    /// Go one step deeper: `patch.at("data").at(0)` is Python's `patch["data"][0]`.
    pub fn at(mut self, key: impl Into<PathKey>) -> Self {
        self.location.push(key.into());
        self
    }

    fn push(&mut self, operation: &str, extra: Option<PathKey>, params: Map<String, Value>) {
        let mut location: Vec<Value> = self.location.iter().map(Value::from).collect();
        if let Some(key) = extra {
            location.push(Value::from(&key));
        }
        let mut entry = Map::with_capacity(3);
        entry.insert("operation".into(), Value::String(operation.into()));
        entry.insert("location".into(), Value::Array(location));
        entry.insert("params".into(), Value::Object(params));
        self.patch.operations.push(Value::Object(entry));
    }

    fn with_value(&mut self, operation: &str, value: Value) -> &mut Self {
        let mut params = Map::with_capacity(1);
        params.insert("value".into(), value);
        self.push(operation, None, params);
        self
    }

    /// Set `key` of the dictionary (or list index) here to `value` (`patch[key] = value`).
    pub fn assign(&mut self, key: impl Into<PathKey>, value: impl Serialize) -> &mut Self {
        let mut params = Map::with_capacity(1);
        params.insert("value".into(), json(value));
        self.push("Assign", Some(key.into()), params);
        self
    }

    /// Remove `key` of the dictionary (or list index) here (`del patch[key]`).
    pub fn delete(&mut self, key: impl Into<PathKey>) -> &mut Self {
        self.push("Delete", Some(key.into()), Map::new());
        self
    }

    /// Add `item` at the end of the list here.
    pub fn append(&mut self, item: impl Serialize) -> &mut Self {
        self.with_value("Append", json(item))
    }

    /// Add `item` at the start of the list here.
    pub fn prepend(&mut self, item: impl Serialize) -> &mut Self {
        self.with_value("Prepend", json(item))
    }

    /// Add `item` at `index` of the list here.
    pub fn insert(&mut self, index: i64, item: impl Serialize) -> &mut Self {
        let mut params = Map::with_capacity(2);
        params.insert("value".into(), json(item));
        params.insert("index".into(), Value::from(index));
        self.push("Insert", None, params);
        self
    }

    /// Add every item of `items` at the end of the list here.
    pub fn extend<T: Serialize>(&mut self, items: impl IntoIterator<Item = T>) -> &mut Self {
        let items: Vec<Value> = items.into_iter().map(json).collect();
        self.with_value("Extend", Value::Array(items))
    }

    /// Filter every item equal to `item` out of the list here.
    pub fn remove(&mut self, item: impl Serialize) -> &mut Self {
        self.with_value("Remove", json(item))
    }

    /// Empty the list here.
    pub fn clear(&mut self) -> &mut Self {
        self.push("Clear", None, Map::new());
        self
    }

    /// Reverse the list here.
    pub fn reverse(&mut self) -> &mut Self {
        self.push("Reverse", None, Map::new());
        self
    }

    /// Merge the dictionary `value` into the dictionary here (Python's `update`).
    pub fn merge(&mut self, value: impl Serialize) -> &mut Self {
        self.with_value("Merge", json(value))
    }

    /// Add `value` to the number here (`+=`).
    pub fn add(&mut self, value: impl Serialize) -> &mut Self {
        self.with_value("Add", json(value))
    }

    /// Subtract `value` from the number here (`-=`).
    pub fn sub(&mut self, value: impl Serialize) -> &mut Self {
        self.with_value("Sub", json(value))
    }

    /// Multiply the number here by `value` (`*=`).
    pub fn mul(&mut self, value: impl Serialize) -> &mut Self {
        self.with_value("Mul", json(value))
    }

    /// Divide the number here by `value` (`/=`).
    pub fn div(&mut self, value: impl Serialize) -> &mut Self {
        self.with_value("Div", json(value))
    }
}

macro_rules! root_operations {
    ($($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) $(<$gen:ident: $bound:path>)?;)*) => {$(
        $(#[$doc])*
        pub fn $name$(<$gen: $bound>)?(&mut self, $($arg: $ty),*) -> &mut Self {
            self.root().$name($($arg),*);
            self
        }
    )*};
}

impl Patch {
    /// A patch without operations (it changes nothing).
    pub fn new() -> Self {
        Patch::default()
    }

    /// The place `key` inside the value; chain [`PatchAt::at`] for deeper ones.
    pub fn at(&mut self, key: impl Into<PathKey>) -> PatchAt<'_> {
        self.root().at(key)
    }

    fn root(&mut self) -> PatchAt<'_> {
        PatchAt {
            patch: self,
            location: Vec::new(),
        }
    }

    /// The operations, as Dash writes them.
    pub fn operations(&self) -> &[Value] {
        &self.operations
    }

    root_operations! {
        /// Set `key` of the value to `item`; see [`PatchAt::assign`].
        fn assign(key: impl Into<PathKey>, item: impl Serialize);
        /// Remove `key` of the value; see [`PatchAt::delete`].
        fn delete(key: impl Into<PathKey>);
        /// Add `item` at the end of the list; see [`PatchAt::append`].
        fn append(item: impl Serialize);
        /// Add `item` at the start of the list; see [`PatchAt::prepend`].
        fn prepend(item: impl Serialize);
        /// Add `item` at `index` of the list; see [`PatchAt::insert`].
        fn insert(index: i64, item: impl Serialize);
        /// Add the items at the end of the list; see [`PatchAt::extend`].
        fn extend(items: impl IntoIterator<Item = T>) <T: Serialize>;
        /// Filter `item` out of the list; see [`PatchAt::remove`].
        fn remove(item: impl Serialize);
        /// Empty the list; see [`PatchAt::clear`].
        fn clear();
        /// Reverse the list; see [`PatchAt::reverse`].
        fn reverse();
        /// Merge a dictionary into the value; see [`PatchAt::merge`].
        fn merge(value: impl Serialize);
        /// Add to the number; see [`PatchAt::add`].
        fn add(value: impl Serialize);
        /// Subtract from the number; see [`PatchAt::sub`].
        fn sub(value: impl Serialize);
        /// Multiply the number; see [`PatchAt::mul`].
        fn mul(value: impl Serialize);
        /// Divide the number; see [`PatchAt::div`].
        fn div(value: impl Serialize);
    }
}

impl Serialize for Patch {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("__dash_patch_update", "__dash_patch_update")?;
        map.serialize_entry("operations", &self.operations)?;
        map.end()
    }
}

impl From<Patch> for Value {
    fn from(patch: Patch) -> Self {
        json(patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_operation_is_written_as_dash_writes_it() {
        let mut patch = Patch::new();
        patch
            .append(1)
            .prepend("p")
            .insert(2, json!({"a": 1}))
            .extend([3, 4])
            .remove(1)
            .clear()
            .reverse()
            .delete(0)
            .assign("k", [1]);
        patch.at("d").merge(json!({"x": 1})).delete("y");
        patch.at("n").add(1).sub(2).mul(3).div(4);
        patch.at("rows").at(-1).at("cells").append("c");
        let op = |name: &str, location: Value, params: Value| json!({"operation": name, "location": location, "params": params});
        assert_eq!(
            serde_json::to_value(&patch).expect("JSON"),
            json!({
                "__dash_patch_update": "__dash_patch_update",
                "operations": [
                    op("Append", json!([]), json!({"value": 1})),
                    op("Prepend", json!([]), json!({"value": "p"})),
                    op("Insert", json!([]), json!({"value": {"a": 1}, "index": 2})),
                    op("Extend", json!([]), json!({"value": [3, 4]})),
                    op("Remove", json!([]), json!({"value": 1})),
                    op("Clear", json!([]), json!({})),
                    op("Reverse", json!([]), json!({})),
                    op("Delete", json!([0]), json!({})),
                    op("Assign", json!(["k"]), json!({"value": [1]})),
                    op("Merge", json!(["d"]), json!({"value": {"x": 1}})),
                    op("Delete", json!(["d", "y"]), json!({})),
                    op("Add", json!(["n"]), json!({"value": 1})),
                    op("Sub", json!(["n"]), json!({"value": 2})),
                    op("Mul", json!(["n"]), json!({"value": 3})),
                    op("Div", json!(["n"]), json!({"value": 4})),
                    op("Append", json!(["rows", -1, "cells"]), json!({"value": "c"})),
                ]
            })
        );
    }

    #[test]
    fn an_empty_patch_has_no_operations() {
        assert_eq!(
            serde_json::to_string(&Patch::new()).expect("JSON"),
            r#"{"__dash_patch_update":"__dash_patch_update","operations":[]}"#
        );
    }
}
