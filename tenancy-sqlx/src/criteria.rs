//! Which of a model's rows a builder asks for, and in which order: the filter, the ordering
//! and the page that [`Select`](crate::Select) (one tenant) and [`Report`](crate::Report)
//! (many) both carry. Kept in one type so that the two builders accumulate filters and
//! orderings the same way; what each makes of them (a keyset tie-breaker, a merge across
//! tenants) stays with the builder.

use crate::column::{Filter, Order};

pub(crate) struct Criteria<M> {
    /// Every filter given, ANDed.
    pub(crate) filter: Filter<M>,
    /// The ordering columns, in the order given.
    pub(crate) order: Vec<Order<M>>,
    pub(crate) limit: Option<i64>,
    pub(crate) offset: Option<i64>,
}

impl<M> Criteria<M> {
    /// Every row, unordered, unpaged.
    pub(crate) fn new() -> Self {
        Self {
            filter: Filter::all(),
            order: Vec::new(),
            limit: None,
            offset: None,
        }
    }

    /// Keeps the rows matching `filter` too: filters accumulate with AND.
    pub(crate) fn and(&mut self, filter: Filter<M>) {
        self.filter = std::mem::replace(&mut self.filter, Filter::all()).and(filter);
    }

    /// Whether a page (limit or offset) is asked for.
    pub(crate) fn paged(&self) -> bool {
        self.limit.is_some() || self.offset.is_some()
    }

    /// Adds these fields to a builder's `Debug`.
    pub(crate) fn debug_fields<'d, 'a, 'b>(
        &self,
        d: &'d mut std::fmt::DebugStruct<'a, 'b>,
    ) -> &'d mut std::fmt::DebugStruct<'a, 'b> {
        d.field("filter", &self.filter)
            .field("order", &self.order)
            .field("limit", &self.limit)
            .field("offset", &self.offset)
    }
}

// By hand: a derive would ask `M: Clone`, and models need not be.
impl<M> Clone for Criteria<M> {
    fn clone(&self) -> Self {
        Self {
            filter: self.filter.clone(),
            order: self.order.clone(),
            limit: self.limit,
            offset: self.offset,
        }
    }
}
