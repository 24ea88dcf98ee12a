//! A basket as the POS sends it: lines with a SKU, a category, an optional brand, a quantity and
//! their totals; and what a points campaign may be scoped to among them.

/// One line of a basket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasketLine {
    pub sku: String,
    pub category: String,
    pub brand: Option<String>,
    /// Units, at least 1.
    pub quantity: i64,
    pub unit_cents: i64,
    /// What the customer pays for the line (after the POS's own discounts).
    pub total_cents: i64,
}

impl BasketLine {
    /// The one line a sale given as a total alone stands for: no SKU, category or brand, so no
    /// scoped campaign matches it and no category excludes it.
    pub fn total_only(total_cents: i64) -> Self {
        BasketLine {
            sku: String::new(),
            category: String::new(),
            brand: None,
            quantity: 1,
            unit_cents: total_cents,
            total_cents,
        }
    }
}

/// Which lines a campaign applies to, when not the whole basket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineScope {
    Sku(String),
    Category(String),
    Brand(String),
}

impl LineScope {
    pub fn matches(&self, line: &BasketLine) -> bool {
        match self {
            LineScope::Sku(s) => !s.is_empty() && *s == line.sku,
            LineScope::Category(c) => !c.is_empty() && *c == line.category,
            LineScope::Brand(b) => line.brand.as_deref() == Some(b.as_str()),
        }
    }
}
