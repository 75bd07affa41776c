//! JSON lines: one object per row, keys in column order. Its options, encoder and decoder.

pub mod decode;
pub mod encode;
pub mod options;

pub use self::decode::JsonLinesDecoder;
pub use self::encode::JsonLinesEncoder;
pub use self::options::JsonFormat;
