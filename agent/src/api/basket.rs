//! A basket as the POS sends it with a sale or a quote, checked: every problem is a 400 naming
//! the line and the field, and nothing is recorded.

use super::ApiError;
use crate::engine::BasketLine;
use serde::Deserialize;

/// The most lines one basket may carry.
pub const MAX_LINES: usize = 500;
/// The largest total, in cents, of a sale or a line (100 million euros).
pub const MAX_CENTS: i64 = 10_000_000_000;

/// One line of a basket as the POS sends it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineBody {
    sku: String,
    category: String,
    #[serde(default)]
    brand: Option<String>,
    quantity: i64,
    unit_cents: i64,
    total_cents: i64,
}

fn text_ok(value: &str) -> bool {
    !value.is_empty() && value.chars().count() <= 64 && !value.chars().any(char::is_control)
}

fn bad(message: String) -> ApiError {
    ApiError::invalid("bad_lines", message)
}

/// The sale's total and its lines: lines alone (the total is their sum), a total alone (no
/// lines), or both when they agree.
pub fn basket(
    total_cents: Option<i64>,
    lines: Option<Vec<LineBody>>,
) -> Result<(i64, Vec<BasketLine>), ApiError> {
    let Some(lines) = lines else {
        let total = total_cents.ok_or_else(|| {
            ApiError::invalid("bad_total", "send `total_cents`, `lines`, or both")
        })?;
        if !(0..=MAX_CENTS).contains(&total) {
            return Err(ApiError::invalid(
                "bad_total",
                format!("`total_cents` must be between 0 and {MAX_CENTS}"),
            ));
        }
        return Ok((total, Vec::new()));
    };
    if lines.is_empty() || lines.len() > MAX_LINES {
        return Err(bad(format!(
            "`lines` holds 1 to {MAX_LINES} lines (send a total alone for a sale without lines)"
        )));
    }
    let mut out = Vec::with_capacity(lines.len());
    let mut sum: i64 = 0;
    for (i, l) in lines.into_iter().enumerate() {
        let n = i + 1;
        if !text_ok(&l.sku)
            || !text_ok(&l.category)
            || l.brand.as_deref().is_some_and(|b| !text_ok(b))
        {
            return Err(bad(format!(
                "line {n}: `sku`, `category` and `brand` are 1 to 64 printable characters"
            )));
        }
        if !(1..=100_000).contains(&l.quantity) {
            return Err(bad(format!(
                "line {n}: `quantity` is a whole number from 1 to 100000"
            )));
        }
        if !(0..=MAX_CENTS).contains(&l.unit_cents) || !(0..=MAX_CENTS).contains(&l.total_cents) {
            return Err(bad(format!(
                "line {n}: `unit_cents` and `total_cents` are between 0 and {MAX_CENTS}"
            )));
        }
        sum = sum.saturating_add(l.total_cents);
        out.push(BasketLine {
            sku: l.sku,
            category: l.category,
            brand: l.brand,
            quantity: l.quantity,
            unit_cents: l.unit_cents,
            total_cents: l.total_cents,
        });
    }
    if sum > MAX_CENTS {
        return Err(bad(format!(
            "the lines add up to more than {MAX_CENTS} cents"
        )));
    }
    match total_cents {
        Some(total) if total != sum => Err(ApiError::invalid(
            "bad_total",
            format!("`total_cents` is {total} but the lines add up to {sum}"),
        )),
        _ => Ok((sum, out)),
    }
}

/// A refund's lines as sent: `{"line": 2, "quantity": 1}`, the line numbered from 1 in the
/// order the sale sent them.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundLineBody {
    line: usize,
    quantity: i64,
}

pub fn refund_lines(lines: Vec<RefundLineBody>) -> Result<Vec<(usize, i64)>, ApiError> {
    if lines.is_empty() || lines.len() > MAX_LINES {
        return Err(bad(format!("`lines` holds 1 to {MAX_LINES} lines")));
    }
    Ok(lines.into_iter().map(|l| (l.line, l.quantity)).collect())
}
