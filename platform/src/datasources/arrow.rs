//! A result as one Arrow IPC stream: the columns' values gathered while the rows stream in
//! (bounded by the row and byte caps), each column's type settled at the end.
//!
//! Integers become Int64, floats and decimals Float64, text Utf8, booleans Boolean, bytes
//! Binary, dates Date32 and timestamps Timestamp(µs) (UTC for zoned ones). A column whose
//! values disagree (SQLite's dynamic typing) widens: integers and floats give Float64;
//! anything with text gives Utf8. A column of NULLs only is Utf8 (the value type is
//! unknown). NULLs stay NULL.

use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};

/// One value read from a row.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// SQL NULL.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float (or a decimal).
    Float(f64),
    /// Text.
    Text(String),
    /// Bytes.
    Bytes(Vec<u8>),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since 1970-01-01 00:00, without a zone.
    Timestamp(i64),
    /// Microseconds since 1970-01-01 00:00 UTC.
    TimestampUtc(i64),
}

impl Cell {
    /// Bytes this value counts for against the byte cap.
    pub fn weight(&self) -> usize {
        match self {
            Cell::Null => 1,
            Cell::Bool(_) => 1,
            Cell::Date(_) => 4,
            Cell::Int(_) | Cell::Float(_) | Cell::Timestamp(_) | Cell::TimestampUtc(_) => 8,
            Cell::Text(s) => s.len() + 4,
            Cell::Bytes(b) => b.len() + 4,
        }
    }
}

/// The columns of a result being read.
pub struct Columns {
    names: Vec<String>,
    values: Vec<Vec<Cell>>,
}

impl Columns {
    /// No rows yet, these column names.
    pub fn new(names: Vec<String>) -> Self {
        let values = names.iter().map(|_| Vec::new()).collect();
        Self { names, values }
    }

    /// Rows so far.
    pub fn rows(&self) -> usize {
        self.values.first().map_or(0, Vec::len)
    }

    /// Appends one row (one cell per column).
    pub fn push(&mut self, row: Vec<Cell>) {
        for (column, cell) in self.values.iter_mut().zip(row) {
            column.push(cell);
        }
    }

    /// The Arrow IPC stream of the columns.
    pub fn into_ipc(self) -> Result<Vec<u8>, arrow_schema::ArrowError> {
        let mut fields = Vec::with_capacity(self.names.len());
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.names.len());
        let rows = self.values.first().map_or(0, Vec::len);
        for (name, cells) in self.names.into_iter().zip(self.values) {
            let array = column_array(&cells);
            fields.push(Field::new(name, array.data_type().clone(), true));
            arrays.push(array);
        }
        let schema = Arc::new(Schema::new(fields));
        let batch = if arrays.is_empty() {
            RecordBatch::try_new_with_options(
                schema.clone(),
                arrays,
                &arrow_array::RecordBatchOptions::new().with_row_count(Some(rows)),
            )?
        } else {
            RecordBatch::try_new(schema.clone(), arrays)?
        };
        let mut out = Vec::new();
        {
            let mut writer = arrow_ipc::writer::StreamWriter::try_new(&mut out, &schema)?;
            writer.write(&batch)?;
            writer.finish()?;
        }
        Ok(out)
    }
}

/// What a column's values have in common.
fn column_type(cells: &[Cell]) -> DataType {
    let mut seen: Option<DataType> = None;
    for cell in cells {
        let t = match cell {
            Cell::Null => continue,
            Cell::Bool(_) => DataType::Boolean,
            Cell::Int(_) => DataType::Int64,
            Cell::Float(_) => DataType::Float64,
            Cell::Text(_) => DataType::Utf8,
            Cell::Bytes(_) => DataType::Binary,
            Cell::Date(_) => DataType::Date32,
            Cell::Timestamp(_) => DataType::Timestamp(TimeUnit::Microsecond, None),
            Cell::TimestampUtc(_) => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        };
        seen = Some(match seen {
            None => t,
            Some(prev) if prev == t => prev,
            Some(DataType::Int64 | DataType::Float64)
                if matches!(t, DataType::Int64 | DataType::Float64) =>
            {
                DataType::Float64
            }
            Some(prev) if prev == DataType::Binary || t == DataType::Binary => DataType::Binary,
            Some(_) => DataType::Utf8,
        });
    }
    seen.unwrap_or(DataType::Utf8)
}

fn as_text(cell: &Cell) -> Option<String> {
    Some(match cell {
        Cell::Null => return None,
        Cell::Bool(b) => b.to_string(),
        Cell::Int(i) => i.to_string(),
        Cell::Float(f) => f.to_string(),
        Cell::Text(s) => s.clone(),
        Cell::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Cell::Date(d) => d.to_string(),
        Cell::Timestamp(t) | Cell::TimestampUtc(t) => t.to_string(),
    })
}

fn column_array(cells: &[Cell]) -> ArrayRef {
    match column_type(cells) {
        DataType::Boolean => {
            let mut b = BooleanBuilder::with_capacity(cells.len());
            for c in cells {
                b.append_option(match c {
                    Cell::Bool(v) => Some(*v),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        DataType::Int64 => {
            let mut b = Int64Builder::with_capacity(cells.len());
            for c in cells {
                b.append_option(match c {
                    Cell::Int(v) => Some(*v),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        DataType::Float64 => {
            let mut b = Float64Builder::with_capacity(cells.len());
            for c in cells {
                b.append_option(match c {
                    Cell::Float(v) => Some(*v),
                    Cell::Int(v) => Some(*v as f64),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        DataType::Date32 => {
            let mut b = Date32Builder::with_capacity(cells.len());
            for c in cells {
                b.append_option(match c {
                    Cell::Date(v) => Some(*v),
                    _ => None,
                });
            }
            Arc::new(b.finish())
        }
        DataType::Timestamp(_, zone) => {
            let mut b = TimestampMicrosecondBuilder::with_capacity(cells.len());
            for c in cells {
                b.append_option(match c {
                    Cell::Timestamp(v) | Cell::TimestampUtc(v) => Some(*v),
                    _ => None,
                });
            }
            Arc::new(b.finish().with_timezone_opt(zone))
        }
        DataType::Binary => {
            let mut b = BinaryBuilder::new();
            for c in cells {
                match c {
                    Cell::Null => b.append_null(),
                    Cell::Bytes(v) => b.append_value(v),
                    other => b.append_value(as_text(other).unwrap_or_default()),
                }
            }
            Arc::new(b.finish())
        }
        _ => {
            let mut b = StringBuilder::new();
            for c in cells {
                b.append_option(as_text(c));
            }
            Arc::new(b.finish())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;
    use arrow_array::cast::AsArray;

    #[test]
    fn columns_round_trip_through_ipc_with_nulls_and_widening() {
        let mut columns = Columns::new(vec!["n".into(), "x".into(), "s".into(), "none".into()]);
        columns.push(vec![
            Cell::Int(1),
            Cell::Int(2),
            Cell::Text("a".into()),
            Cell::Null,
        ]);
        columns.push(vec![Cell::Null, Cell::Float(2.5), Cell::Int(3), Cell::Null]);
        let ipc = columns.into_ipc().expect("ipc");
        let reader = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(ipc), None)
            .expect("reader");
        let batches: Vec<_> = reader.map(|b| b.expect("batch")).collect();
        let batch = &batches[0];
        assert_eq!(batch.num_rows(), 2);
        let n = batch
            .column(0)
            .as_primitive::<arrow_array::types::Int64Type>();
        assert_eq!(n.value(0), 1);
        assert!(n.is_null(1));
        let x = batch
            .column(1)
            .as_primitive::<arrow_array::types::Float64Type>();
        assert_eq!((x.value(0), x.value(1)), (2.0, 2.5));
        let s = batch.column(2).as_string::<i32>();
        assert_eq!((s.value(0), s.value(1)), ("a", "3"));
        assert_eq!(batch.column(3).null_count(), 2);
    }
}
