//! A small columnar table for callbacks (feature `frame`): read a CSV file of the app's data
//! folder (a Parquet file with the feature `parquet`), or an Arrow IPC stream, then select, filter, group, sort and take
//! the values a figure or a DataTable needs.
//!
//! ```
//! use sdk::frame::{Agg, Cell, Frame};
//!
//! let csv = "region,product,revenue\nEU,Bolt,10\nUS,Bolt,5\nEU,Fuse,7\n";
//! let frame = Frame::from_csv_bytes(csv.as_bytes()).unwrap();
//! let by_region = frame
//!     .filter("revenue", |cell| cell.as_f64().is_some_and(|v| v > 5.0))
//!     .unwrap()
//!     .group_by("region", &[("revenue", Agg::Sum)])
//!     .unwrap();
//! assert_eq!(by_region.strings("region").unwrap(), ["EU"]);
//! assert_eq!(by_region.numbers("revenue_sum").unwrap(), [17.0]);
//! # let _ = Cell::Null;
//! ```
//!
//! Files come through [`crate::data::read`]: in a component from the platform's data
//! folder, natively from `TESSERA_DATA_DIR`, so tests read the same files. Everything is
//! built on the Arrow crates; [`Frame::batch`] hands out the `RecordBatch` for anything
//! this module does not cover.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, UInt32Array,
};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::{ArrowError, DataType, Field, Schema};
use serde_json::{Map, Value};

/// Rows read to guess a CSV file's column types.
const CSV_INFER_ROWS: usize = 1000;

/// Why a frame could not be read or computed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError(String);

impl FrameError {
    fn new(message: impl Into<String>) -> Self {
        FrameError(message.into())
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FrameError {}

impl From<ArrowError> for FrameError {
    fn from(error: ArrowError) -> Self {
        FrameError(error.to_string())
    }
}

#[cfg(feature = "parquet")]
impl From<parquet::errors::ParquetError> for FrameError {
    fn from(error: parquet::errors::ParquetError) -> Self {
        FrameError(error.to_string())
    }
}

impl From<crate::data::ReadError> for FrameError {
    fn from(error: crate::data::ReadError) -> Self {
        FrameError(error.to_string())
    }
}

impl From<FrameError> for crate::Error {
    fn from(error: FrameError) -> Self {
        crate::Error::failed(error.0)
    }
}

/// The result of frame operations.
pub type Result<T> = std::result::Result<T, FrameError>;

/// One value of a column, as a predicate sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    /// No value.
    Null,
    /// Any numeric column (integers are widened).
    Number(f64),
    /// A boolean column.
    Bool(bool),
    /// Text (and any other type, in its display form).
    Text(&'a str),
}

impl Cell<'_> {
    /// The number, if the cell is one.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Cell::Number(value) => Some(*value),
            _ => None,
        }
    }

    /// The text, if the cell is text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Cell::Text(text) => Some(text),
            _ => None,
        }
    }
}

/// An aggregation of [`Frame::group_by`]; nulls are skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agg {
    /// The sum.
    Sum,
    /// The mean (null for a group without values).
    Mean,
    /// How many values.
    Count,
    /// The smallest value.
    Min,
    /// The largest value.
    Max,
}

impl Agg {
    fn suffix(self) -> &'static str {
        match self {
            Agg::Sum => "sum",
            Agg::Mean => "mean",
            Agg::Count => "count",
            Agg::Min => "min",
            Agg::Max => "max",
        }
    }
}

/// A table held by column (one Arrow `RecordBatch`).
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    batch: RecordBatch,
}

impl Frame {
    /// A frame of an existing batch.
    pub fn from_batch(batch: RecordBatch) -> Self {
        Frame { batch }
    }

    /// The underlying batch.
    pub fn batch(&self) -> &RecordBatch {
        &self.batch
    }

    /// Read the CSV file `path` of the app's data folder (a header line, types guessed
    /// from the first 1,000 rows).
    pub fn read_csv(path: &str) -> Result<Frame> {
        Self::from_csv_bytes(&crate::data::read(path)?)
    }

    #[cfg(feature = "parquet")]
    /// Read the Parquet file `path` of the app's data folder.
    pub fn read_parquet(path: &str) -> Result<Frame> {
        Self::from_parquet_bytes(crate::data::read(path)?)
    }

    /// A frame of CSV text with a header line.
    pub fn from_csv_bytes(bytes: &[u8]) -> Result<Frame> {
        let format = arrow_csv::reader::Format::default().with_header(true);
        let (schema, _) = format.infer_schema(std::io::Cursor::new(bytes), Some(CSV_INFER_ROWS))?;
        let schema = Arc::new(schema);
        let reader = arrow_csv::ReaderBuilder::new(schema.clone())
            .with_format(format)
            .build(std::io::Cursor::new(bytes))?;
        let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Frame {
            batch: arrow_select::concat::concat_batches(&schema, &batches)?,
        })
    }

    #[cfg(feature = "parquet")]
    /// A frame of a Parquet file's bytes.
    pub fn from_parquet_bytes(bytes: impl Into<bytes::Bytes>) -> Result<Frame> {
        let builder =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes.into())?;
        let schema = builder.schema().clone();
        let batches = builder
            .build()?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Frame {
            batch: arrow_select::concat::concat_batches(&schema, &batches)?,
        })
    }

    /// A frame of an Arrow IPC stream (the format query results arrive in).
    pub fn from_ipc(bytes: &[u8]) -> Result<Frame> {
        let reader = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)?;
        let schema = reader.schema();
        let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Frame {
            batch: arrow_select::concat::concat_batches(&schema, &batches)?,
        })
    }

    /// The frame as an Arrow IPC stream.
    pub fn to_ipc(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        {
            let mut writer =
                arrow_ipc::writer::StreamWriter::try_new(&mut out, self.batch.schema_ref())?;
            writer.write(&self.batch)?;
            writer.finish()?;
        }
        Ok(out)
    }

    #[cfg(feature = "parquet")]
    /// The frame as a Parquet file (uncompressed).
    pub fn to_parquet(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut writer = parquet::arrow::ArrowWriter::try_new(&mut out, self.batch.schema(), None)?;
        writer.write(&self.batch)?;
        writer.close()?;
        Ok(out)
    }

    /// Number of rows.
    pub fn num_rows(&self) -> usize {
        self.batch.num_rows()
    }

    /// The column names, in order.
    pub fn column_names(&self) -> Vec<String> {
        self.batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    fn column(&self, name: &str) -> Result<&ArrayRef> {
        self.batch.column_by_name(name).ok_or_else(|| {
            FrameError::new(format!(
                "no column `{name}` (columns: {})",
                self.column_names().join(", ")
            ))
        })
    }

    /// Only the named columns, in that order.
    pub fn select(&self, columns: &[&str]) -> Result<Frame> {
        let schema = self.batch.schema();
        let mut indices = Vec::with_capacity(columns.len());
        for name in columns {
            self.column(name)?;
            indices.push(schema.index_of(name)?);
        }
        Ok(Frame {
            batch: self.batch.project(&indices)?,
        })
    }

    /// The rows whose `column` value passes `keep`.
    pub fn filter(&self, column: &str, keep: impl Fn(Cell<'_>) -> bool) -> Result<Frame> {
        let cells = Cells::of(self.column(column)?)?;
        let mask: BooleanArray = (0..self.num_rows())
            .map(|row| Some(keep(cells.get(row))))
            .collect();
        Ok(Frame {
            batch: arrow_select::filter::filter_record_batch(&self.batch, &mask)?,
        })
    }

    /// The first `n` rows.
    pub fn head(&self, n: usize) -> Frame {
        Frame {
            batch: self.batch.slice(0, n.min(self.num_rows())),
        }
    }

    /// The rows ordered by `column` (nulls last), stable.
    pub fn sort(&self, column: &str, descending: bool) -> Result<Frame> {
        let options = arrow_schema::SortOptions {
            descending,
            nulls_first: false,
        };
        let sorted = arrow_ord::sort::lexsort_to_indices(
            &[arrow_ord::sort::SortColumn {
                values: self.column(column)?.clone(),
                options: Some(options),
            }],
            None,
        )?;
        Ok(Frame {
            batch: arrow_select::take::take_record_batch(&self.batch, &sorted)?,
        })
    }

    /// One row per distinct value of `key` (in order of first appearance), with the key
    /// and, for each `(column, agg)`, a column named `{column}_{agg}` (`revenue_sum`).
    pub fn group_by(&self, key: &str, aggregations: &[(&str, Agg)]) -> Result<Frame> {
        let keys = display_strings(self.column(key)?)?;
        let key_nulls = self.column(key)?.clone();
        let mut group_of_row = Vec::with_capacity(keys.len());
        let mut first_rows: Vec<u32> = Vec::new();
        let mut groups: HashMap<Option<&str>, usize> = HashMap::new();
        for (row, value) in keys.iter().enumerate() {
            let value = (!key_nulls.is_null(row)).then_some(value.as_str());
            let next = groups.len();
            let group = *groups.entry(value).or_insert(next);
            if group == next {
                first_rows.push(u32::try_from(row).map_err(|_| FrameError::new("too many rows"))?);
            }
            group_of_row.push(group);
        }
        let first_rows = UInt32Array::from(first_rows);
        let mut fields = vec![self.batch.schema().field_with_name(key)?.clone()];
        let mut columns = vec![arrow_select::take::take(
            self.column(key)?.as_ref(),
            &first_rows,
            None,
        )?];
        let count = groups.len();
        for (column, agg) in aggregations {
            let values = numbers_of(self.column(column)?)?;
            let mut sums = vec![0.0; count];
            let mut counts = vec![0i64; count];
            let mut mins = vec![f64::INFINITY; count];
            let mut maxs = vec![f64::NEG_INFINITY; count];
            for (row, group) in group_of_row.iter().enumerate() {
                if values.is_null(row) {
                    continue;
                }
                let value = values.value(row);
                sums[*group] += value;
                counts[*group] += 1;
                mins[*group] = mins[*group].min(value);
                maxs[*group] = maxs[*group].max(value);
            }
            let name = format!("{column}_{}", agg.suffix());
            let some = |group: usize, value: f64| (counts[group] > 0).then_some(value);
            let array: ArrayRef = match agg {
                Agg::Count => Arc::new(Int64Array::from(counts.clone())),
                Agg::Sum => Arc::new(Float64Array::from(sums.clone())),
                Agg::Mean => Arc::new(Float64Array::from_iter(
                    (0..count).map(|g| some(g, sums[g] / counts[g] as f64)),
                )),
                Agg::Min => Arc::new(Float64Array::from_iter(
                    (0..count).map(|g| some(g, mins[g])),
                )),
                Agg::Max => Arc::new(Float64Array::from_iter(
                    (0..count).map(|g| some(g, maxs[g])),
                )),
            };
            fields.push(Field::new(name, array.data_type().clone(), true));
            columns.push(array);
        }
        Ok(Frame {
            batch: RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?,
        })
    }

    /// A numeric column's values as `f64` (nulls are NaN), for a figure's trace.
    pub fn numbers(&self, column: &str) -> Result<Vec<f64>> {
        let values = numbers_of(self.column(column)?)?;
        Ok((0..values.len())
            .map(|row| match values.is_null(row) {
                true => f64::NAN,
                false => values.value(row),
            })
            .collect())
    }

    /// A column's values as text (nulls are empty), for a figure's categories.
    pub fn strings(&self, column: &str) -> Result<Vec<String>> {
        display_strings(self.column(column)?)
    }

    /// The rows as JSON objects keyed by column name: a DataTable's `data`. Numbers stay
    /// numbers (non-finite ones become null), booleans booleans, anything else its text.
    pub fn to_rows(&self) -> Result<Vec<Map<String, Value>>> {
        let names = self.column_names();
        let columns = self
            .batch
            .columns()
            .iter()
            .map(Cells::of)
            .collect::<Result<Vec<_>>>()?;
        Ok((0..self.num_rows())
            .map(|row| {
                names
                    .iter()
                    .zip(&columns)
                    .map(|(name, cells)| {
                        let value = match cells.get(row) {
                            Cell::Null => Value::Null,
                            Cell::Number(n) => {
                                serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
                            }
                            Cell::Bool(b) => Value::Bool(b),
                            Cell::Text(t) => Value::String(t.to_owned()),
                        };
                        (name.clone(), value)
                    })
                    .collect()
            })
            .collect())
    }
}

/// A column read cell by cell: numbers widened to `f64`, text as is, booleans, or any
/// other type in its display form.
enum Cells {
    Numbers(Float64Array),
    Bools(BooleanArray),
    Text(StringArray),
}

impl Cells {
    fn of(array: &ArrayRef) -> Result<Cells> {
        let data_type = array.data_type();
        Ok(if data_type.is_numeric() {
            Cells::Numbers(numbers_of(array)?)
        } else if *data_type == DataType::Boolean {
            Cells::Bools(
                array
                    .as_any()
                    .downcast_ref::<BooleanArray>()
                    .cloned()
                    .ok_or_else(|| FrameError::new("a boolean column that is not one"))?,
            )
        } else {
            let texts: StringArray = display_strings(array)?
                .into_iter()
                .enumerate()
                .map(|(row, text)| (!array.is_null(row)).then_some(text))
                .collect();
            Cells::Text(texts)
        })
    }

    fn get(&self, row: usize) -> Cell<'_> {
        match self {
            Cells::Numbers(a) if a.is_valid(row) => Cell::Number(a.value(row)),
            Cells::Bools(a) if a.is_valid(row) => Cell::Bool(a.value(row)),
            Cells::Text(a) if a.is_valid(row) => Cell::Text(a.value(row)),
            _ => Cell::Null,
        }
    }
}

fn numbers_of(array: &ArrayRef) -> Result<Float64Array> {
    if !array.data_type().is_numeric() {
        return Err(FrameError::new(format!(
            "the column holds {}, not numbers",
            array.data_type()
        )));
    }
    let cast = arrow_cast::cast(array, &DataType::Float64)?;
    cast.as_any()
        .downcast_ref::<Float64Array>()
        .cloned()
        .ok_or_else(|| FrameError::new("a cast to numbers gave no numbers"))
}

fn display_strings(array: &ArrayRef) -> Result<Vec<String>> {
    let options = FormatOptions::default();
    let formatter = ArrayFormatter::try_new(array.as_ref(), &options)?;
    Ok((0..array.len())
        .map(|row| match array.is_null(row) {
            true => String::new(),
            false => formatter.value(row).to_string(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SALES: &str = "region,product,units,revenue\n\
                         EU,Bolt,3,30.5\n\
                         US,Bolt,1,10\n\
                         EU,Fuse,2,\n\
                         APAC,Drill,5,50\n\
                         US,Fuse,4,40\n";

    fn sales() -> Frame {
        Frame::from_csv_bytes(SALES.as_bytes()).expect("csv")
    }

    #[test]
    fn csv_columns_get_types_and_nulls() {
        let frame = sales();
        assert_eq!(frame.num_rows(), 5);
        assert_eq!(
            frame.column_names(),
            ["region", "product", "units", "revenue"]
        );
        assert_eq!(
            frame.batch().schema().field(2).data_type(),
            &DataType::Int64
        );
        assert_eq!(
            frame.strings("region").expect("text"),
            ["EU", "US", "EU", "APAC", "US"]
        );
        let revenue = frame.numbers("revenue").expect("numbers");
        assert_eq!(revenue[0], 30.5);
        assert!(revenue[2].is_nan(), "a missing value is NaN");
        assert!(frame.numbers("region").is_err(), "text is not numbers");
        let err = frame.numbers("nope").expect_err("missing");
        assert!(err.to_string().contains("no column `nope`"), "{err}");
    }

    #[test]
    fn select_filter_sort_and_head() {
        let frame = sales();
        let picked = frame.select(&["revenue", "region"]).expect("select");
        assert_eq!(picked.column_names(), ["revenue", "region"]);
        assert!(frame.select(&["region", "nope"]).is_err());

        let eu = frame
            .filter("region", |cell| cell.as_str() == Some("EU"))
            .expect("filter");
        assert_eq!(eu.numbers("units").expect("units"), [3.0, 2.0]);
        let big = frame
            .filter("units", |cell| cell.as_f64().is_some_and(|u| u >= 3.0))
            .expect("filter");
        assert_eq!(
            big.strings("product").expect("p"),
            ["Bolt", "Drill", "Fuse"]
        );
        let missing = frame
            .filter("revenue", |cell| cell == Cell::Null)
            .expect("filter");
        assert_eq!(missing.num_rows(), 1);

        let sorted = frame.sort("revenue", true).expect("sort");
        assert_eq!(
            sorted.strings("region").expect("r"),
            ["APAC", "US", "EU", "US", "EU"]
        );
        assert!(
            sorted.numbers("revenue").expect("n")[4].is_nan(),
            "nulls last"
        );
        let ascending = frame.sort("region", false).expect("sort");
        assert_eq!(
            ascending.head(2).strings("region").expect("r"),
            ["APAC", "EU"]
        );
        assert_eq!(frame.head(100).num_rows(), 5);
    }

    #[test]
    fn group_by_sums_means_counts_and_extremes_skipping_nulls() {
        let grouped = sales()
            .group_by(
                "region",
                &[
                    ("revenue", Agg::Sum),
                    ("revenue", Agg::Mean),
                    ("revenue", Agg::Count),
                    ("units", Agg::Min),
                    ("units", Agg::Max),
                ],
            )
            .expect("group");
        assert_eq!(grouped.strings("region").expect("r"), ["EU", "US", "APAC"]);
        assert_eq!(
            grouped.numbers("revenue_sum").expect("s"),
            [30.5, 50.0, 50.0]
        );
        assert_eq!(
            grouped.numbers("revenue_mean").expect("m"),
            [30.5, 25.0, 50.0]
        );
        assert_eq!(
            grouped.numbers("revenue_count").expect("c"),
            [1.0, 2.0, 1.0]
        );
        assert_eq!(grouped.numbers("units_min").expect("min"), [2.0, 1.0, 5.0]);
        assert_eq!(grouped.numbers("units_max").expect("max"), [3.0, 4.0, 5.0]);
        // The key keeps its type.
        let by_units = sales()
            .group_by("units", &[("revenue", Agg::Sum)])
            .expect("g");
        assert_eq!(
            by_units.batch().schema().field(0).data_type(),
            &DataType::Int64
        );
        // A group with no values: its mean is null, its sum 0.
        let only_null = sales()
            .filter("product", |c| c.as_str() == Some("Fuse"))
            .and_then(|f| f.filter("region", |c| c.as_str() == Some("EU")))
            .and_then(|f| f.group_by("region", &[("revenue", Agg::Mean), ("revenue", Agg::Sum)]))
            .expect("group");
        assert!(only_null.numbers("revenue_mean").expect("m")[0].is_nan());
        assert_eq!(only_null.numbers("revenue_sum").expect("s"), [0.0]);
    }

    #[test]
    fn rows_for_a_data_table() {
        let rows = sales().head(3).to_rows().expect("rows");
        assert_eq!(
            serde_json::to_value(&rows).expect("json"),
            serde_json::json!([
                {"region": "EU", "product": "Bolt", "units": 3.0, "revenue": 30.5},
                {"region": "US", "product": "Bolt", "units": 1.0, "revenue": 10.0},
                {"region": "EU", "product": "Fuse", "units": 2.0, "revenue": null},
            ])
        );
    }

    #[cfg(feature = "parquet")]
    #[test]
    fn ipc_and_parquet_round_trip() {
        let frame = sales();
        let ipc = frame.to_ipc().expect("ipc");
        assert_eq!(Frame::from_ipc(&ipc).expect("read ipc"), frame);
        let parquet = frame.to_parquet().expect("parquet");
        assert_eq!(&parquet[..4], b"PAR1");
        let back = Frame::from_parquet_bytes(parquet).expect("read parquet");
        assert_eq!(
            back.to_rows().expect("rows"),
            frame.to_rows().expect("rows")
        );
        assert!(Frame::from_ipc(b"not arrow").is_err());
        assert!(Frame::from_parquet_bytes(b"not parquet".to_vec()).is_err());
    }

    #[test]
    fn files_are_read_from_the_data_folder() {
        // Natively the data folder is TESSERA_DATA_DIR; this test's own process sets it.
        let dir = std::env::temp_dir().join(format!("sdk-frame-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("sales.csv"), SALES).expect("write");
        // SAFETY: no other test of this crate reads or writes this variable.
        unsafe { std::env::set_var(crate::data::DATA_DIR_VAR, &dir) };
        let csv = Frame::read_csv("sales.csv").expect("csv");
        assert_eq!(csv.num_rows(), 5);
        #[cfg(feature = "parquet")]
        {
            std::fs::write(dir.join("sales.parquet"), sales().to_parquet().expect("pq"))
                .expect("write");
            let parquet = Frame::read_parquet("sales.parquet").expect("parquet");
            assert_eq!(
                parquet.to_rows().expect("rows"),
                csv.to_rows().expect("rows")
            );
        }
        let err = Frame::read_csv("../etc/passwd").expect_err("refused");
        assert!(err.to_string().contains("`..`"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
