//! An upload's bytes, as they arrive, into member rows: NDJSON (one JSON object a line) or CSV
//! (a header row naming the columns, RFC 4180 quoting, a field may span lines).
//!
//! Memory is bounded whatever the upload: a row longer than [`MAX_ROW_BYTES`] is not kept but
//! skipped to its end and refused (`row_too_large`), and the rows of one chunk are handed on
//! before the next is read. A row's shape is checked here (fields, types, unknown keys); the
//! PUT's rules (ids, cards, keys) are the caller's.

use loyalty_protocol::MemberProfile;
use serde::Deserialize;

/// The longest row kept: far above any real member (a few hundred bytes), far below memory.
pub const MAX_ROW_BYTES: usize = 64 * 1024;
/// CSV columns a row may have before it is refused as too large.
const MAX_COLUMNS: usize = 64;

/// One row of the upload, with the line it starts on (1 is the first line of the file).
#[derive(Debug)]
pub struct Row {
    pub line: u64,
    pub parsed: Result<(String, MemberProfile), Refusal>,
}

/// Why a row was not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub member_id: Option<String>,
    pub message: String,
}

impl Refusal {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            code,
            member_id: None,
            message: message.into(),
        }
    }

    fn too_large() -> Self {
        Refusal::new(
            "row_too_large",
            format!("the row is longer than {MAX_ROW_BYTES} bytes; skipped to its end"),
        )
    }
}

/// An upload that cannot be read at all: nothing of it is imported.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum UploadError {
    #[error("the CSV header names an unknown column {0:?}; columns: member_id, tier, segments, cards, qr_public_key, proximity_key, display_name")]
    UnknownColumn(String),
    #[error("the CSV header has no member_id column")]
    NoMemberId,
    #[error("the CSV header names column {0:?} twice")]
    DuplicateColumn(String),
    #[error("the CSV header is not a row of column names (too long, or not UTF-8)")]
    BadHeader,
}

/// The upload's format, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ndjson,
    Csv,
}

/// Turns the upload's chunks into rows.
pub enum Rows {
    Ndjson(Ndjson),
    Csv(Box<Csv>),
}

impl Rows {
    pub fn new(format: Format) -> Self {
        match format {
            Format::Ndjson => Rows::Ndjson(Ndjson::default()),
            Format::Csv => Rows::Csv(Box::default()),
        }
    }

    /// The rows that end in `chunk` (with what came before), appended to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<Row>) -> Result<(), UploadError> {
        match self {
            Rows::Ndjson(n) => {
                n.feed(chunk, out);
                Ok(())
            }
            Rows::Csv(c) => c.feed(chunk, out),
        }
    }

    /// The upload ended: its last row, if it had no line end.
    pub fn finish(&mut self, out: &mut Vec<Row>) -> Result<(), UploadError> {
        match self {
            Rows::Ndjson(n) => {
                n.finish(out);
                Ok(())
            }
            Rows::Csv(c) => c.feed(&[], out),
        }
    }
}

/// A member row as NDJSON: the PUT's body plus `member_id`; an unknown key is refused, not
/// ignored (a misspelt `card` must not save a member without cards).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRow {
    member_id: String,
    #[serde(default)]
    tier: Option<String>,
    #[serde(default)]
    segments: Vec<String>,
    #[serde(default)]
    cards: Vec<String>,
    #[serde(default)]
    qr_public_key: Option<String>,
    #[serde(default)]
    proximity_key: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
}

#[derive(Default)]
pub struct Ndjson {
    buf: Vec<u8>,
    /// Lines ended so far.
    line: u64,
    /// The current line passed [`MAX_ROW_BYTES`]: its bytes are dropped up to its end.
    overflow: bool,
}

impl Ndjson {
    fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<Row>) {
        while let Some(end) = chunk.iter().position(|&b| b == b'\n') {
            self.take(&chunk[..end]);
            self.end_line(out);
            chunk = &chunk[end + 1..];
        }
        self.take(chunk);
    }

    fn finish(&mut self, out: &mut Vec<Row>) {
        if !self.buf.is_empty() || self.overflow {
            self.end_line(out);
        }
    }

    fn take(&mut self, bytes: &[u8]) {
        if self.overflow {
            return;
        }
        if self.buf.len() + bytes.len() > MAX_ROW_BYTES {
            self.overflow = true;
            self.buf.clear();
        } else {
            self.buf.extend_from_slice(bytes);
        }
    }

    fn end_line(&mut self, out: &mut Vec<Row>) {
        self.line += 1;
        let line = self.line;
        if std::mem::take(&mut self.overflow) {
            out.push(Row {
                line,
                parsed: Err(Refusal::too_large()),
            });
            return;
        }
        let text = self.buf.trim_ascii();
        if !text.is_empty() {
            out.push(Row {
                line,
                parsed: json_row(text),
            });
        }
        self.buf.clear();
    }
}

fn json_row(text: &[u8]) -> Result<(String, MemberProfile), Refusal> {
    let row: JsonRow = serde_json::from_slice(text).map_err(|e| {
        Refusal::new(
            "bad_row",
            format!("a row must be a JSON object {{\"member_id\", \"tier\", \"segments\", \"cards\", \"qr_public_key\", \"proximity_key\", \"display_name\"}}: {e}"),
        )
    })?;
    Ok((
        row.member_id,
        MemberProfile {
            tier: row.tier,
            segments: row.segments,
            cards: row.cards,
            qr_public_key: row.qr_public_key,
            proximity_key: row.proximity_key,
            display_name: row.display_name,
        },
    ))
}

/// A CSV column HQ knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Column {
    MemberId,
    Tier,
    Segments,
    Cards,
    QrPublicKey,
    ProximityKey,
    DisplayName,
}

impl Column {
    fn named(name: &str) -> Option<Column> {
        Some(match name {
            "member_id" => Column::MemberId,
            "tier" => Column::Tier,
            "segments" => Column::Segments,
            "cards" => Column::Cards,
            "qr_public_key" => Column::QrPublicKey,
            "proximity_key" => Column::ProximityKey,
            "display_name" => Column::DisplayName,
            _ => return None,
        })
    }
}

pub struct Csv {
    reader: csv_core::Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
    nout: usize,
    nend: usize,
    overflow: bool,
    /// From the header row; `None` until it is read.
    columns: Option<Vec<Column>>,
}

impl Default for Csv {
    fn default() -> Self {
        Csv {
            reader: csv_core::Reader::new(),
            out: vec![0; MAX_ROW_BYTES],
            ends: vec![0; MAX_COLUMNS],
            nout: 0,
            nend: 0,
            overflow: false,
            columns: None,
        }
    }
}

impl Csv {
    /// An empty `input` says the upload ended (csv-core's convention).
    fn feed(&mut self, mut input: &[u8], out: &mut Vec<Row>) -> Result<(), UploadError> {
        use csv_core::ReadRecordResult as R;
        loop {
            let (res, nin, nout, nend) = self.reader.read_record(
                input,
                &mut self.out[self.nout..],
                &mut self.ends[self.nend..],
            );
            // Whether the record just ended on a `\n`, which csv-core has already counted.
            let after_lf = nin > 0 && input.get(nin - 1) == Some(&b'\n');
            input = &input[nin..];
            self.nout += nout;
            self.nend += nend;
            match res {
                R::InputEmpty => return Ok(()),
                R::OutputFull | R::OutputEndsFull => {
                    // Kept reading to the record's end, its bytes dropped.
                    self.overflow = true;
                    self.nout = 0;
                    self.nend = 0;
                }
                R::Record => self.record(after_lf, out)?,
                R::End => return Ok(()),
            }
        }
    }

    fn record(&mut self, after_lf: bool, out: &mut Vec<Row>) -> Result<(), UploadError> {
        let overflow = std::mem::take(&mut self.overflow);
        // The line it starts on: where it ended, less the line ends inside its fields.
        let ended = self.reader.line() - u64::from(after_lf);
        let inside = if overflow {
            0
        } else {
            self.out[..self.nout]
                .iter()
                .filter(|&&b| b == b'\n')
                .count() as u64
        };
        let line = ended.saturating_sub(inside).max(1);
        let fields = {
            let mut fields = Vec::with_capacity(self.nend);
            let mut from = 0;
            for &end in &self.ends[..self.nend] {
                fields.push(self.out.get(from..end).unwrap_or_default());
                from = end;
            }
            fields
        };
        self.nout = 0;
        self.nend = 0;
        let Some(columns) = &self.columns else {
            if overflow {
                return Err(UploadError::BadHeader);
            }
            let columns = header(&fields)?;
            self.columns = Some(columns);
            return Ok(());
        };
        let parsed = if overflow {
            Err(Refusal::too_large())
        } else {
            csv_row(columns, &fields)
        };
        out.push(Row { line, parsed });
        Ok(())
    }
}

fn header(fields: &[&[u8]]) -> Result<Vec<Column>, UploadError> {
    let mut columns = Vec::with_capacity(fields.len());
    for field in fields {
        let name = std::str::from_utf8(field)
            .map_err(|_| UploadError::BadHeader)?
            .trim()
            .trim_start_matches('\u{feff}');
        let column =
            Column::named(name).ok_or_else(|| UploadError::UnknownColumn(name.to_owned()))?;
        if columns.contains(&column) {
            return Err(UploadError::DuplicateColumn(name.to_owned()));
        }
        columns.push(column);
    }
    if !columns.contains(&Column::MemberId) {
        return Err(UploadError::NoMemberId);
    }
    Ok(columns)
}

/// Lists (segments, cards) are `;`-separated in one cell; an empty cell is no value.
fn csv_row(columns: &[Column], fields: &[&[u8]]) -> Result<(String, MemberProfile), Refusal> {
    if fields.len() != columns.len() {
        return Err(Refusal::new(
            "bad_row",
            format!(
                "the row has {} fields, the header {} columns",
                fields.len(),
                columns.len()
            ),
        ));
    }
    let mut member_id = String::new();
    let mut profile = MemberProfile::default();
    for (column, field) in columns.iter().zip(fields) {
        let text = std::str::from_utf8(field)
            .map_err(|_| Refusal::new("bad_row", "the row is not UTF-8"))?
            .trim();
        let value = (!text.is_empty()).then(|| text.to_owned());
        let list = || {
            text.split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        };
        match column {
            Column::MemberId => member_id = text.to_owned(),
            Column::Tier => profile.tier = value,
            Column::Segments => profile.segments = list(),
            Column::Cards => profile.cards = list(),
            Column::QrPublicKey => profile.qr_public_key = value,
            Column::ProximityKey => profile.proximity_key = value,
            Column::DisplayName => profile.display_name = value,
        }
    }
    Ok((member_id, profile))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(format: Format, chunks: &[&[u8]]) -> Result<Vec<Row>, UploadError> {
        let mut r = Rows::new(format);
        let mut out = Vec::new();
        for c in chunks {
            r.feed(c, &mut out)?;
        }
        r.finish(&mut out)?;
        Ok(out)
    }

    #[test]
    fn ndjson_rows_split_across_chunks_keep_their_line_numbers() {
        let out = rows(
            Format::Ndjson,
            &[
                b"{\"member_id\":\"a\"}\n\n{\"member_",
                b"id\":\"b\",\"tier\":\"gold\"}\r\nnot json",
            ],
        )
        .unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].line, 1);
        assert_eq!(out[1].line, 3);
        let (id, p) = out[1].parsed.as_ref().unwrap();
        assert_eq!((id.as_str(), p.tier.as_deref()), ("b", Some("gold")));
        assert_eq!(out[2].line, 4);
        assert_eq!(out[2].parsed.as_ref().unwrap_err().code, "bad_row");
    }

    #[test]
    fn an_unknown_key_refuses_the_row() {
        let out = rows(
            Format::Ndjson,
            &[b"{\"member_id\":\"a\",\"card\":[\"1\"]}\n"],
        )
        .unwrap();
        assert!(out[0].parsed.as_ref().unwrap_err().message.contains("card"));
    }

    #[test]
    fn a_row_too_large_is_refused_and_the_next_one_read() {
        let big = vec![b'x'; MAX_ROW_BYTES + 10];
        for format in [Format::Ndjson, Format::Csv] {
            let mut chunks: Vec<&[u8]> = Vec::new();
            if format == Format::Csv {
                chunks.push(b"member_id,tier\n");
            }
            chunks.extend([
                b"{\"member_id\":\"" as &[u8],
                &big,
                b"\"}\n",
                b"{\"member_id\":\"b\"}\n",
            ]);
            if format == Format::Csv {
                chunks.truncate(1);
                chunks.extend([b"a," as &[u8], &big, b"\nb,gold\n"]);
            }
            let out = rows(format, &chunks).unwrap();
            assert_eq!(out.len(), 2, "{format:?}");
            assert_eq!(out[0].parsed.as_ref().unwrap_err().code, "row_too_large");
            assert_eq!(out[1].parsed.as_ref().unwrap().0, "b");
        }
    }

    #[test]
    fn csv_quoting_commas_quotes_and_newlines_in_a_field() {
        let csv = b"member_id,display_name,cards,segments\n\
                    m1,\"Smith, Jo\",4000001;4000002,\n\
                    m2,\"Say \"\"hi\"\"\nnext line\",,vip; new \n";
        let out = rows(Format::Csv, &[&csv[..7], &csv[7..]]).unwrap();
        let crlf = String::from_utf8(csv.to_vec())
            .unwrap()
            .replace("\n", "\r\n");
        let crlf_lines: Vec<u64> = rows(Format::Csv, &[crlf.as_bytes()])
            .unwrap()
            .iter()
            .map(|r| r.line)
            .collect();
        assert_eq!(crlf_lines, [2, 3]);
        assert_eq!(out.len(), 2);
        let (id, p) = out[0].parsed.as_ref().unwrap();
        assert_eq!(id, "m1");
        assert_eq!(p.display_name.as_deref(), Some("Smith, Jo"));
        assert_eq!(p.cards, ["4000001", "4000002"]);
        assert!(p.segments.is_empty());
        assert_eq!(out[0].line, 2);
        let (_, p) = out[1].parsed.as_ref().unwrap();
        assert_eq!(p.display_name.as_deref(), Some("Say \"hi\"\nnext line"));
        assert_eq!(p.segments, ["vip", "new"]);
        assert_eq!(out[1].line, 3);
    }

    #[test]
    fn csv_header_problems_refuse_the_upload() {
        assert_eq!(
            rows(Format::Csv, &[b"member_id,card\nm1,1\n"]).unwrap_err(),
            UploadError::UnknownColumn("card".into())
        );
        assert_eq!(
            rows(Format::Csv, &[b"tier\ngold\n"]).unwrap_err(),
            UploadError::NoMemberId
        );
        let out = rows(Format::Csv, &[b"member_id,tier\nm1\n"]).unwrap();
        assert_eq!(out[0].parsed.as_ref().unwrap_err().code, "bad_row");
    }
}
