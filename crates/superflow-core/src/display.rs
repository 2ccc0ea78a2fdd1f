//! How records print in `print()` and `write_as_text()`.
//!
//! Flink prints a tuple as `(a,1)` through Java's `toString`; the issue that specified
//! Superflow asks for `(a, false)`. Strings print bare, tuples in parentheses with `, `
//! between fields, and sequences in brackets. Other types opt in by implementing
//! [`RecordDisplay`], or through `Display` with [`impl_record_display_via_display!`].

use std::fmt::{self, Write};

/// Formats a record the way `print()` shows it.
pub trait RecordDisplay {
    /// Writes the record's text form into `out`.
    fn fmt_record(&self, out: &mut dyn Write) -> fmt::Result;

    /// The record's text form as a new string.
    fn to_record_string(&self) -> String {
        let mut s = String::new();
        // Writing into a String cannot fail.
        let _ = self.fmt_record(&mut s);
        s
    }
}

/// Implements [`RecordDisplay`] through the type's `Display`.
#[macro_export]
macro_rules! impl_record_display_via_display {
    ($($t:ty),* $(,)?) => {
        $(impl $crate::RecordDisplay for $t {
            fn fmt_record(&self, out: &mut dyn ::std::fmt::Write) -> ::std::fmt::Result {
                write!(out, "{}", self)
            }
        })*
    };
}

impl_record_display_via_display!(
    i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize, f32, f64, bool, char, String,
    str
);

impl<T: RecordDisplay + ?Sized> RecordDisplay for &T {
    fn fmt_record(&self, out: &mut dyn Write) -> fmt::Result {
        (**self).fmt_record(out)
    }
}

impl<T: RecordDisplay + ?Sized> RecordDisplay for Box<T> {
    fn fmt_record(&self, out: &mut dyn Write) -> fmt::Result {
        (**self).fmt_record(out)
    }
}

impl<T: RecordDisplay + ?Sized> RecordDisplay for std::sync::Arc<T> {
    fn fmt_record(&self, out: &mut dyn Write) -> fmt::Result {
        (**self).fmt_record(out)
    }
}

impl RecordDisplay for () {
    fn fmt_record(&self, out: &mut dyn Write) -> fmt::Result {
        out.write_str("()")
    }
}

impl<T: RecordDisplay> RecordDisplay for Option<T> {
    fn fmt_record(&self, out: &mut dyn Write) -> fmt::Result {
        match self {
            Some(v) => v.fmt_record(out),
            None => out.write_str("null"),
        }
    }
}

fn fmt_seq<'a, T: RecordDisplay + 'a>(
    items: impl Iterator<Item = &'a T>,
    out: &mut dyn Write,
) -> fmt::Result {
    out.write_char('[')?;
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.write_str(", ")?;
        }
        item.fmt_record(out)?;
    }
    out.write_char(']')
}

impl<T: RecordDisplay> RecordDisplay for Vec<T> {
    fn fmt_record(&self, out: &mut dyn Write) -> fmt::Result {
        fmt_seq(self.iter(), out)
    }
}

impl<T: RecordDisplay> RecordDisplay for [T] {
    fn fmt_record(&self, out: &mut dyn Write) -> fmt::Result {
        fmt_seq(self.iter(), out)
    }
}

macro_rules! tuple_display {
    ($($name:ident $idx:tt),+) => {
        impl<$($name: RecordDisplay),+> RecordDisplay for ($($name,)+) {
            fn fmt_record(&self, out: &mut dyn Write) -> fmt::Result {
                out.write_char('(')?;
                let mut _first = true;
                $(
                    if !_first { out.write_str(", ")?; }
                    _first = false;
                    self.$idx.fmt_record(out)?;
                )+
                out.write_char(')')
            }
        }
    };
}

tuple_display!(A 0);
tuple_display!(A 0, B 1);
tuple_display!(A 0, B 1, C 2);
tuple_display!(A 0, B 1, C 2, D 3);
tuple_display!(A 0, B 1, C 2, D 3, E 4);
tuple_display!(A 0, B 1, C 2, D 3, E 4, F 5);
tuple_display!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple_display!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuples_print_like_the_seed_job_expects() {
        assert_eq!(("a", false).to_record_string(), "(a, false)");
        assert_eq!(
            (String::from("b"), 3, 1.5).to_record_string(),
            "(b, 3, 1.5)"
        );
        assert_eq!(vec![1, 2].to_record_string(), "[1, 2]");
        assert_eq!(Some(("x", 1)).to_record_string(), "(x, 1)");
        assert_eq!(None::<i32>.to_record_string(), "null");
    }
}
