//! The common elements of `dash_html_components` (Dash's `html` module).
//!
//! Each function starts an empty [`Component`]; chain [`Component::children`],
//! [`Component::id`], [`Component::style`] and [`Component::prop`] for the rest. Elements
//! without a function here are one [`html::element`](element) call away. This module only
//! builds JSON; it knows nothing about the browser's DOM.

use crate::component::{Component, component};

/// The namespace of Dash's HTML components.
pub const NAMESPACE: &str = "dash_html_components";

/// Any element of `dash_html_components` by its Dash type name, e.g. `element("Canvas")`.
///
/// It starts with `"children": null`, as Dash writes every HTML element (whose first
/// argument is `children`) until children are set.
pub fn element(kind: &str) -> Component {
    component(NAMESPACE, kind).prop("children", serde_json::Value::Null)
}

macro_rules! elements {
    ($($func:ident => $kind:literal),* $(,)?) => {$(
        #[doc = concat!("An `html.", $kind, "` element.")]
        pub fn $func() -> Component {
            element($kind)
        }
    )*};
}

elements! {
    div => "Div",
    span => "Span",
    p => "P",
    h1 => "H1",
    h2 => "H2",
    h3 => "H3",
    h4 => "H4",
    h5 => "H5",
    h6 => "H6",
    a => "A",
    b => "B",
    i => "I",
    em => "Em",
    strong => "Strong",
    small => "Small",
    code => "Code",
    pre => "Pre",
    blockquote => "Blockquote",
    br => "Br",
    hr => "Hr",
    img => "Img",
    button => "Button",
    label => "Label",
    form => "Form",
    ul => "Ul",
    ol => "Ol",
    li => "Li",
    table => "Table",
    thead => "Thead",
    tbody => "Tbody",
    tfoot => "Tfoot",
    tr => "Tr",
    th => "Th",
    td => "Td",
    caption => "Caption",
    section => "Section",
    article => "Article",
    header => "Header",
    footer => "Footer",
    nav => "Nav",
    main => "Main",
    aside => "Aside",
    details => "Details",
    summary => "Summary",
    iframe => "Iframe",
    progress => "Progress",
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_use_the_html_namespace_and_dash_type_names() {
        let node = h2().children("Sales explorer");
        assert_eq!(node.namespace(), "dash_html_components");
        assert_eq!(node.kind(), "H2");
        assert_eq!(iframe().kind(), "Iframe");
    }
}
