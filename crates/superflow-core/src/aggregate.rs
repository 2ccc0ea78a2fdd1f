//! Field-position aggregation, behind Flink's `sum(1)`, `min(1)`, `max_by(1)`.
//!
//! A Flink user names a tuple field by position. [`FieldAggregate`] gives the rolling
//! aggregations that access: tuples of up to eight fields whose fields implement
//! [`FieldValue`], and scalars (position 0 is the value itself). Whether a position
//! exists and is numeric is checked when the job is built, not per record.

use std::cmp::Ordering;

/// One field of a record that aggregations can read.
pub trait FieldValue: Clone {
    /// Whether `add` is defined (numbers); strings and booleans only compare.
    const NUMERIC: bool;
    /// Adds `other` into `self` (wrapping for integers, as Java does).
    fn add_assign(&mut self, other: &Self);
    /// Orders two values; incomparable floats (NaN) order as equal.
    fn cmp_value(&self, other: &Self) -> Ordering;
}

macro_rules! int_field {
    ($($t:ty),*) => {$(
        impl FieldValue for $t {
            const NUMERIC: bool = true;
            #[inline] fn add_assign(&mut self, other: &Self) { *self = self.wrapping_add(*other); }
            #[inline] fn cmp_value(&self, other: &Self) -> Ordering { self.cmp(other) }
        }
    )*};
}
int_field!(i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize);

macro_rules! float_field {
    ($($t:ty),*) => {$(
        impl FieldValue for $t {
            const NUMERIC: bool = true;
            #[inline] fn add_assign(&mut self, other: &Self) { *self += *other; }
            #[inline] fn cmp_value(&self, other: &Self) -> Ordering {
                self.partial_cmp(other).unwrap_or(Ordering::Equal)
            }
        }
    )*};
}
float_field!(f32, f64);

macro_rules! ordered_field {
    ($($t:ty),*) => {$(
        impl FieldValue for $t {
            const NUMERIC: bool = false;
            #[inline] fn add_assign(&mut self, _other: &Self) {}
            #[inline] fn cmp_value(&self, other: &Self) -> Ordering { self.cmp(other) }
        }
    )*};
}
ordered_field!(String, &'static str, bool, char);

/// A record whose fields can be aggregated by position.
pub trait FieldAggregate: Sized {
    /// The number of addressable positions.
    const ARITY: usize;
    /// Whether the field at `pos` is numeric (`sum` needs it).
    fn field_is_numeric(pos: usize) -> bool;
    /// `self[pos] += other[pos]`.
    fn add_field(&mut self, other: &Self, pos: usize);
    /// Compares `self[pos]` with `other[pos]`.
    fn cmp_field(&self, other: &Self, pos: usize) -> Ordering;
    /// `self[pos] = other[pos]`.
    fn copy_field(&mut self, other: &Self, pos: usize);

    /// Checks a position for an aggregation, naming what is wrong.
    fn check_position(pos: usize, needs_numeric: bool) -> Result<(), FieldPositionError> {
        let record = std::any::type_name::<Self>();
        if pos >= Self::ARITY {
            return Err(FieldPositionError::OutOfRange {
                pos,
                record,
                arity: Self::ARITY,
            });
        }
        if needs_numeric && !Self::field_is_numeric(pos) {
            return Err(FieldPositionError::NotNumeric { pos, record });
        }
        Ok(())
    }
}

/// Why a field position cannot be aggregated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldPositionError {
    /// The record type has fewer fields.
    #[error("field position {pos} is out of range: the record type {record} has {arity} field(s)")]
    OutOfRange {
        /// The position asked for.
        pos: usize,
        /// The record type.
        record: &'static str,
        /// Its number of fields.
        arity: usize,
    },
    /// The field is not a number, so it cannot be summed.
    #[error("field {pos} of {record} is not numeric, so it cannot be summed")]
    NotNumeric {
        /// The position asked for.
        pos: usize,
        /// The record type.
        record: &'static str,
    },
}

macro_rules! scalar_aggregate {
    ($($t:ty),*) => {$(
        impl FieldAggregate for $t {
            const ARITY: usize = 1;
            fn field_is_numeric(_pos: usize) -> bool { <$t as FieldValue>::NUMERIC }
            #[inline] fn add_field(&mut self, other: &Self, _pos: usize) { self.add_assign(other) }
            #[inline] fn cmp_field(&self, other: &Self, _pos: usize) -> Ordering { self.cmp_value(other) }
            #[inline] fn copy_field(&mut self, other: &Self, _pos: usize) { *self = other.clone() }
        }
    )*};
}
scalar_aggregate!(i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize, f32, f64);

macro_rules! tuple_aggregate {
    ($arity:expr; $($name:ident $idx:tt),+) => {
        impl<$($name: FieldValue),+> FieldAggregate for ($($name,)+) {
            const ARITY: usize = $arity;
            fn field_is_numeric(pos: usize) -> bool {
                match pos { $($idx => $name::NUMERIC,)+ _ => false }
            }
            #[inline]
            fn add_field(&mut self, other: &Self, pos: usize) {
                match pos { $($idx => self.$idx.add_assign(&other.$idx),)+ _ => {} }
            }
            #[inline]
            fn cmp_field(&self, other: &Self, pos: usize) -> Ordering {
                match pos { $($idx => self.$idx.cmp_value(&other.$idx),)+ _ => Ordering::Equal }
            }
            #[inline]
            fn copy_field(&mut self, other: &Self, pos: usize) {
                match pos { $($idx => self.$idx = other.$idx.clone(),)+ _ => {} }
            }
        }
    };
}
tuple_aggregate!(1; A 0);
tuple_aggregate!(2; A 0, B 1);
tuple_aggregate!(3; A 0, B 1, C 2);
tuple_aggregate!(4; A 0, B 1, C 2, D 3);
tuple_aggregate!(5; A 0, B 1, C 2, D 3, E 4);
tuple_aggregate!(6; A 0, B 1, C 2, D 3, E 4, F 5);
tuple_aggregate!(7; A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple_aggregate!(8; A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_checked() {
        assert!(<(String, i64)>::check_position(1, true).is_ok());
        let err = <(String, i64)>::check_position(0, true)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("field 0") && err.contains("not numeric"),
            "{err}"
        );
        let err = <(String, i64)>::check_position(2, false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("out of range") && err.contains("2 field(s)"),
            "{err}"
        );
    }

    #[test]
    fn fields_aggregate() {
        let mut a = ("k".to_string(), 1i64, 2.5f64);
        a.add_field(&("x".to_string(), 2, 1.0), 1);
        a.add_field(&("x".to_string(), 2, 1.0), 2);
        assert_eq!(a, ("k".to_string(), 3, 3.5));
        assert_eq!(a.cmp_field(&("k".to_string(), 9, 0.0), 1), Ordering::Less);
    }
}
