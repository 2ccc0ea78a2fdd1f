//! The two Rust types Python data takes inside the engine: [`PyObj`], a record kept as
//! a Python object (pickled only where it crosses a process or enters a checkpoint),
//! and [`PyKey`], a key converted to a Rust value, so that hashing a key into its key
//! group is the same in every process (Python randomizes `hash(str)` per process).

use std::fmt;

use pyo3::exceptions::PyTypeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{
    PyBool, PyBytes, PyDict, PyFloat, PyFrozenSet, PyInt, PyList, PySet, PyString, PyTuple,
};
use serde::de;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use superflow_core::RecordDisplay;

static DUMPS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static CLOUD_DUMPS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static DEEPCOPY: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `pickle.dumps(value, protocol=5)`, or `cloudpickle.dumps` for what pickle cannot
/// write by reference (classes and functions defined inside functions, lambdas).
pub(crate) fn pickle_dumps(py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    let dumps = DUMPS.import(py, "pickle", "dumps")?;
    let cloud = || -> PyResult<Vec<u8>> {
        let bytes = CLOUD_DUMPS
            .import(py, "cloudpickle", "dumps")?
            .call1((value, 5))?;
        Ok(bytes.cast::<PyBytes>()?.as_bytes().to_vec())
    };
    match dumps.call1((value, 5)) {
        Ok(bytes) => {
            let bytes = bytes.cast::<PyBytes>()?.as_bytes();
            // Pickle writes a class of the driver's script as a reference to `__main__`,
            // which a worker process cannot resolve (its `__main__` is the worker):
            // cloudpickle writes such classes by value.
            if memchr::memmem::find(bytes, b"__main__").is_some() {
                cloud()
            } else {
                Ok(bytes.to_vec())
            }
        }
        Err(_) => cloud(),
    }
}

/// `pickle.loads(bytes)`.
pub(crate) fn pickle_loads<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let loads = LOADS.import(py, "pickle", "loads")?;
    loads.call1((PyBytes::new(py, bytes),))
}

/// A record: a Python object.
pub struct PyObj(pub Py<PyAny>);

impl PyObj {
    /// The object, bound to the interpreter.
    #[inline]
    pub fn bind<'py>(&self, py: Python<'py>) -> &Bound<'py, PyAny> {
        self.0.bind(py)
    }

    /// A new reference to the object.
    #[inline]
    pub fn clone_ref(&self, py: Python<'_>) -> PyObj {
        PyObj(self.0.clone_ref(py))
    }
}

impl Clone for PyObj {
    #[inline]
    fn clone(&self) -> Self {
        // Free inside an operator activation, which holds the GIL already.
        Python::attach(|py| {
            if superflow_core::copying_for_snapshot() {
                self.snapshot_copy(py)
            } else {
                PyObj(self.0.clone_ref(py))
            }
        })
    }
}

impl PyObj {
    /// A copy for a checkpoint, which the writer thread encodes later: the object itself
    /// when nothing can change it (`None`, numbers, strings, bytes, tuples of them),
    /// otherwise a deep copy, since the function may change a list or dict in state in
    /// place before the copy is encoded.
    fn snapshot_copy(&self, py: Python<'_>) -> PyObj {
        let value = self.bind(py);
        if let Some(copy) = copy_plain(value, 0) {
            return PyObj(copy.unbind());
        }
        let copied = DEEPCOPY
            .import(py, "copy", "deepcopy")
            .and_then(|deepcopy| deepcopy.call1((value,)));
        match copied {
            Ok(copy) => PyObj(copy.unbind()),
            Err(e) => {
                // Encoding the object for the checkpoint fails the same way and names it.
                let type_name = value
                    .get_type()
                    .name()
                    .map_or_else(|_| "value".to_string(), |n| n.to_string());
                tracing::warn!("cannot copy a {type_name} in state for a checkpoint: {e}");
                PyObj(self.0.clone_ref(py))
            }
        }
    }
}

/// A copy of plain data: values that cannot change, in lists, dicts, sets and tuples (what
/// the list and map states keep, and most values in state), made without calling into
/// Python, some fifty times faster than `deepcopy`. `None` for anything else.
fn copy_plain<'py>(value: &Bound<'py, PyAny>, depth: usize) -> Option<Bound<'py, PyAny>> {
    if immutable(value, 0) {
        return Some(value.clone());
    }
    if depth >= 8 {
        return None;
    }
    let py = value.py();
    if let Ok(list) = value.cast_exact::<PyList>() {
        let items = list
            .iter()
            .map(|item| copy_plain(&item, depth + 1))
            .collect::<Option<Vec<_>>>()?;
        PyList::new(py, items).ok().map(Bound::into_any)
    } else if let Ok(dict) = value.cast_exact::<PyDict>() {
        let copy = PyDict::new(py);
        for (k, v) in dict.iter() {
            if !immutable(&k, 0) {
                return None;
            }
            copy.set_item(k, copy_plain(&v, depth + 1)?).ok()?;
        }
        Some(copy.into_any())
    } else if let Ok(tuple) = value.cast_exact::<PyTuple>() {
        let items = tuple
            .iter()
            .map(|item| copy_plain(&item, depth + 1))
            .collect::<Option<Vec<_>>>()?;
        PyTuple::new(py, items).ok().map(Bound::into_any)
    } else if let Ok(set) = value.cast_exact::<PySet>() {
        // Set elements are hashable, so plain ones cannot change.
        if !set.iter().all(|item| immutable(&item, 0)) {
            return None;
        }
        PySet::new(py, set.iter()).ok().map(Bound::into_any)
    } else {
        None
    }
}

/// Whether `value` cannot change: exactly `None`, `bool`, `int`, `float`, `str`, `bytes`,
/// or a tuple or frozenset of such (subclasses may carry mutable attributes).
fn immutable(value: &Bound<'_, PyAny>, depth: usize) -> bool {
    if value.is_none()
        || value.is_exact_instance_of::<PyInt>()
        || value.is_exact_instance_of::<PyFloat>()
        || value.is_exact_instance_of::<PyString>()
        || value.is_exact_instance_of::<PyBool>()
        || value.is_exact_instance_of::<PyBytes>()
    {
        return true;
    }
    if depth >= 8 {
        return false;
    }
    if let Ok(tuple) = value.cast_exact::<PyTuple>() {
        tuple.iter().all(|item| immutable(&item, depth + 1))
    } else if let Ok(set) = value.cast_exact::<PyFrozenSet>() {
        set.iter().all(|item| immutable(&item, depth + 1))
    } else {
        false
    }
}

impl fmt::Debug for PyObj {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&Python::attach(|py| repr_of(self.bind(py))))
    }
}

fn repr_of(value: &Bound<'_, PyAny>) -> String {
    value
        .repr()
        .map(|s| s.to_string())
        .unwrap_or_else(|_| "<unprintable>".into())
}

static ROW_CLASS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

impl RecordDisplay for PyObj {
    fn fmt_record(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        // `print()` shows Python's own text of the record, as PyFlink does, and a `Row`
        // as Flink prints one (`+I[a, 1]`).
        let text = Python::attach(|py| {
            let value = self.bind(py);
            let row = ROW_CLASS
                .import(py, "superflow.common.types", "Row")
                .is_ok_and(|class| value.get_type().is(class));
            let text = if row {
                value.call_method0(intern!(py, "_flink_string"))
            } else {
                value.str().map(Bound::into_any)
            };
            text.map(|s| s.to_string())
                .unwrap_or_else(|_| repr_of(value))
        });
        out.write_str(&text)
    }
}

// A record crosses a process or enters a checkpoint in a compact form of its own for the
// common types (None, bool, int, float, str, bytes, and exact tuples and lists of them),
// written straight from the Python object, which costs a fraction of `pickle.dumps`;
// anything else (dicts, sets, class instances, tuple subclasses) is pickled. The variant
// order of `Wire` is the format: the serializer below writes the same indices.

/// A record as it is read back.
#[derive(Deserialize)]
enum Wire {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(#[serde(with = "serde_bytes_vec")] Vec<u8>),
    Tuple(Vec<Wire>),
    List(Vec<Wire>),
    Pickled(#[serde(with = "serde_bytes_vec")] Vec<u8>),
}

/// Byte strings as serde bytes, not as a sequence of numbers.
mod serde_bytes_vec {
    use serde::de::{self, Visitor};
    use serde::Deserializer;
    use std::fmt;

    struct BytesVisitor;

    impl Visitor<'_> for BytesVisitor {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("bytes")
        }
        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_bytes(BytesVisitor)
    }
}

impl Wire {
    fn all_into_py(py: Python<'_>, items: Vec<Wire>) -> PyResult<Vec<Bound<'_, PyAny>>> {
        items.into_iter().map(|w| w.into_py(py)).collect()
    }

    fn into_py<'py>(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(match self {
            Wire::None => py.None().into_bound(py),
            Wire::Bool(b) => PyBool::new(py, b).to_owned().into_any(),
            Wire::Int(i) => PyInt::new(py, i).into_any(),
            Wire::Float(f) => PyFloat::new(py, f).into_any(),
            Wire::Str(s) => PyString::new(py, &s).into_any(),
            Wire::Bytes(b) => PyBytes::new(py, &b).into_any(),
            Wire::Tuple(items) => PyTuple::new(py, Wire::all_into_py(py, items)?)?.into_any(),
            Wire::List(items) => PyList::new(py, Wire::all_into_py(py, items)?)?.into_any(),
            Wire::Pickled(bytes) => pickle_loads(py, &bytes)?,
        })
    }
}

/// A Python object being written, borrowed.
struct WireRef<'a, 'py>(&'a Bound<'py, PyAny>);

impl Serialize for WireRef<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let value = self.0;
        let py = value.py();
        if value.is_none() {
            return serializer.serialize_unit_variant("Wire", 0, "None");
        }
        if let Ok(b) = value.cast_exact::<PyBool>() {
            return serializer.serialize_newtype_variant("Wire", 1, "Bool", &b.is_true());
        }
        if let Ok(i) = value.cast_exact::<PyInt>() {
            if let Ok(v) = i.extract::<i64>() {
                return serializer.serialize_newtype_variant("Wire", 2, "Int", &v);
            }
        } else if let Ok(f) = value.cast_exact::<PyFloat>() {
            return serializer.serialize_newtype_variant("Wire", 3, "Float", &f.value());
        } else if let Ok(s) = value.cast_exact::<PyString>() {
            if let Ok(text) = s.to_str() {
                return serializer.serialize_newtype_variant("Wire", 4, "Str", text);
            }
        } else if let Ok(b) = value.cast_exact::<PyBytes>() {
            return serializer.serialize_newtype_variant(
                "Wire",
                5,
                "Bytes",
                &BytesRef(b.as_bytes()),
            );
        } else if let Ok(t) = value.cast_exact::<PyTuple>() {
            return serializer.serialize_newtype_variant("Wire", 6, "Tuple", &SeqRef(t.as_any()));
        } else if let Ok(l) = value.cast_exact::<PyList>() {
            return serializer.serialize_newtype_variant("Wire", 7, "List", &SeqRef(l.as_any()));
        }
        // The serializers' errors drop their message, so a record that cannot be pickled
        // fails the operator here, naming the record and the reason.
        let bytes = match pickle_dumps(py, value) {
            Ok(bytes) => bytes,
            Err(e) => std::panic::resume_unwind(Box::new(format!(
                "cannot pickle the record {} to send it to another process or into a \
                 checkpoint: {e}",
                repr_of(value)
            ))),
        };
        serializer.serialize_newtype_variant("Wire", 8, "Pickled", &BytesRef(&bytes))
    }
}

struct BytesRef<'a>(&'a [u8]);

impl Serialize for BytesRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

/// The items of a tuple or list.
struct SeqRef<'a, 'py>(&'a Bound<'py, PyAny>);

impl Serialize for SeqRef<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeSeq};
        let len = self.0.len().map_err(S::Error::custom)?;
        let mut seq = serializer.serialize_seq(Some(len))?;
        for item in self.0.try_iter().map_err(S::Error::custom)? {
            let item = item.map_err(S::Error::custom)?;
            seq.serialize_element(&WireRef(&item))?;
        }
        seq.end()
    }
}

impl Serialize for PyObj {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Python::attach(|py| WireRef(self.bind(py)).serialize(serializer))
    }
}

impl<'de> Deserialize<'de> for PyObj {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = Wire::deserialize(deserializer)?;
        Python::attach(|py| wire.into_py(py).map(|v| PyObj(v.unbind())))
            .map_err(|e| de::Error::custom(format!("cannot read a record back: {e}")))
    }
}

/// A key of a keyed stream, as a Rust value. Python's equal values of different types
/// (`1`, `1.0`) become the same key, as they are the same dict key in Python; values of
/// other types than `None`, `bool`, `int`, `float`, `str`, `bytes` and tuples of them
/// are keyed by their pickled bytes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PyKey {
    /// `None`.
    None,
    /// A `bool`.
    Bool(bool),
    /// An `int` that fits 64 bits (or an integral `float`).
    Int(i64),
    /// A larger `int`, in decimal.
    BigInt(String),
    /// A non-integral `float`, by its bits.
    Float(u64),
    /// A `str`.
    Str(String),
    /// A `bytes`.
    Bytes(Vec<u8>),
    /// A `tuple`.
    Tuple(Vec<PyKey>),
    /// Anything else, pickled.
    Pickled(Vec<u8>),
}

impl PyKey {
    /// The key of a Python value.
    pub fn from_py(value: &Bound<'_, PyAny>) -> PyResult<PyKey> {
        if value.is_none() {
            return Ok(PyKey::None);
        }
        if let Ok(s) = value.cast::<PyString>() {
            return Ok(PyKey::Str(s.to_str()?.to_owned()));
        }
        if let Ok(b) = value.cast::<PyBool>() {
            return Ok(PyKey::Bool(b.is_true()));
        }
        if let Ok(i) = value.cast::<PyInt>() {
            return Ok(match i.extract::<i64>() {
                Ok(v) => PyKey::Int(v),
                Err(_) => PyKey::BigInt(i.str()?.to_string()),
            });
        }
        if let Ok(f) = value.cast::<PyFloat>() {
            let v = f.value();
            if v.fract() == 0.0 && v.abs() < 9.0e15 {
                return Ok(PyKey::Int(v as i64));
            }
            return Ok(PyKey::Float(v.to_bits()));
        }
        if let Ok(b) = value.cast::<PyBytes>() {
            return Ok(PyKey::Bytes(b.as_bytes().to_vec()));
        }
        if let Ok(t) = value.cast::<PyTuple>() {
            let parts = t
                .iter()
                .map(|item| PyKey::from_py(&item))
                .collect::<PyResult<Vec<_>>>()?;
            return Ok(PyKey::Tuple(parts));
        }
        let py = value.py();
        // As a dict key: a value Python cannot hash (a list, a dict) is no key.
        if let Err(e) = value.hash() {
            return Err(PyTypeError::new_err(format!(
                "key {} of type {} cannot be used as a key: {e}",
                repr_of(value),
                value.get_type().name()?
            )));
        }
        match pickle_dumps(py, value) {
            Ok(bytes) => Ok(PyKey::Pickled(bytes)),
            Err(e) => Err(PyTypeError::new_err(format!(
                "key {} of type {} cannot be used as a key: {e}",
                repr_of(value),
                value.get_type().name()?
            ))),
        }
    }

    /// The key as a Python value.
    pub fn to_py<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(match self {
            PyKey::None => py.None().into_bound(py),
            PyKey::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
            PyKey::Int(i) => i.into_pyobject(py)?.into_any(),
            PyKey::BigInt(s) => py.import("builtins")?.getattr("int")?.call1((s,))?,
            PyKey::Float(bits) => PyFloat::new(py, f64::from_bits(*bits)).into_any(),
            PyKey::Str(s) => PyString::new(py, s).into_any(),
            PyKey::Bytes(b) => PyBytes::new(py, b).into_any(),
            PyKey::Tuple(parts) => {
                let items = parts
                    .iter()
                    .map(|p| p.to_py(py))
                    .collect::<PyResult<Vec<_>>>()?;
                PyTuple::new(py, items)?.into_any()
            }
            PyKey::Pickled(bytes) => pickle_loads(py, bytes)?,
        })
    }
}
