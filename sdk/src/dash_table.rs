//! `dash_table.DataTable`, with the props a server-side (custom) table needs.
//!
//! A table over more rows than a browser should hold sets `page_action`, `sort_action` and
//! `filter_action` to `"custom"` and answers a callback on `page_current`, `page_size`,
//! `sort_by` and `filter_query` with one page of `data`; [`crate::table`] parses those props.

use serde_json::{Map, Value};

use crate::component::{Component, IntoChildren, component};

/// The namespace of Dash's DataTable.
pub const NAMESPACE: &str = "dash_table";

/// One entry of a table's `columns`.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    id: String,
    name: String,
    kind: Option<&'static str>,
}

impl Column {
    /// A column showing the rows' `id` field under the header `name`.
    pub fn new(id: impl Into<String>, name: impl Into<String>) -> Self {
        Column {
            id: id.into(),
            name: name.into(),
            kind: None,
        }
    }

    /// Mark the column as numeric (`"type": "numeric"`), so the filter row compares numbers.
    pub fn numeric(mut self) -> Self {
        self.kind = Some("numeric");
        self
    }

    /// Mark the column as text (`"type": "text"`).
    pub fn text(mut self) -> Self {
        self.kind = Some("text");
        self
    }

    fn into_value(self) -> Value {
        let mut column = Map::with_capacity(3);
        column.insert("id".into(), Value::String(self.id));
        column.insert("name".into(), Value::String(self.name));
        if let Some(kind) = self.kind {
            column.insert("type".into(), Value::String(kind.into()));
        }
        Value::Object(column)
    }
}

/// A `dash_table.DataTable`.
#[derive(Debug, Clone, PartialEq)]
pub struct DataTable(Component);

/// Start a `dash_table.DataTable`.
pub fn data_table() -> DataTable {
    DataTable(component(NAMESPACE, "DataTable"))
}

impl DataTable {
    /// Set the `id` callbacks use to address this component.
    pub fn id(self, id: impl Into<crate::Id>) -> Self {
        DataTable(self.0.id(id))
    }

    /// Set any prop not covered by a typed method.
    pub fn prop(self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        DataTable(self.0.prop(key, value))
    }

    /// Set the inline `style`.
    pub fn style(self, style: impl Into<Value>) -> Self {
        DataTable(self.0.style(style))
    }

    /// Set the CSS class (`className` on the wire).
    pub fn class_name(self, class: impl Into<String>) -> Self {
        DataTable(self.0.class_name(class))
    }

    /// Set the `columns`.
    pub fn columns(self, columns: impl IntoIterator<Item = Column>) -> Self {
        let columns: Vec<Value> = columns.into_iter().map(Column::into_value).collect();
        self.prop("columns", columns)
    }

    /// Set the rows shown (`data`): a list of objects keyed by column id.
    pub fn data(self, data: impl Into<Value>) -> Self {
        self.prop("data", data)
    }

    /// Set the zero-based page shown.
    pub fn page_current(self, page: usize) -> Self {
        self.prop("page_current", page)
    }

    /// Set the number of rows per page.
    pub fn page_size(self, size: usize) -> Self {
        self.prop("page_size", size)
    }

    /// Set the number of pages (with `page_action` `"custom"`, the callback knows it).
    pub fn page_count(self, count: usize) -> Self {
        self.prop("page_count", count)
    }

    /// `"native"`, `"custom"` (a callback pages) or `"none"`.
    pub fn page_action(self, action: &str) -> Self {
        self.prop("page_action", action)
    }

    /// `"native"`, `"custom"` (a callback sorts) or `"none"`.
    pub fn sort_action(self, action: &str) -> Self {
        self.prop("sort_action", action)
    }

    /// `"single"` or `"multi"`.
    pub fn sort_mode(self, mode: &str) -> Self {
        self.prop("sort_mode", mode)
    }

    /// Set the sort: a list of `{"column_id", "direction"}` objects.
    pub fn sort_by(self, sort_by: impl Into<Value>) -> Self {
        self.prop("sort_by", sort_by)
    }

    /// `"native"`, `"custom"` (a callback filters) or `"none"`.
    pub fn filter_action(self, action: &str) -> Self {
        self.prop("filter_action", action)
    }

    /// Set the filter expression (dash-table's filter syntax).
    pub fn filter_query(self, query: &str) -> Self {
        self.prop("filter_query", query)
    }

    /// The plain component, for code that handles any kind of node.
    pub fn into_component(self) -> Component {
        self.0
    }
}

impl From<DataTable> for Component {
    fn from(node: DataTable) -> Component {
        node.0
    }
}

impl From<DataTable> for Value {
    fn from(node: DataTable) -> Value {
        node.0.into()
    }
}

impl IntoChildren for DataTable {
    fn into_children(self) -> Value {
        self.0.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builds_a_custom_table() {
        let table: Value = data_table()
            .id("t")
            .columns([Column::new("a", "A").numeric(), Column::new("b", "B")])
            .data(json!([]))
            .page_current(0)
            .page_size(20)
            .page_action("custom")
            .sort_action("custom")
            .sort_mode("single")
            .sort_by(json!([]))
            .filter_action("custom")
            .filter_query("")
            .into();
        assert_eq!(table["namespace"], "dash_table");
        assert_eq!(table["type"], "DataTable");
        let props = &table["props"];
        assert_eq!(
            props["columns"],
            json!([{"id": "a", "name": "A", "type": "numeric"}, {"id": "b", "name": "B"}])
        );
        assert_eq!(props["page_size"], 20);
        assert_eq!(props["page_action"], "custom");
        assert_eq!(props["filter_query"], "");
        assert_eq!(props["id"], "t");
    }
}
