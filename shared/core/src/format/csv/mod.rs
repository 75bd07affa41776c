//! CSV in the reference dialect (the file format of a Snowflake unload): its options, the
//! encoder that writes parts and the decoder that reads them back.

pub mod decode;
pub mod encode;
pub mod options;

pub use self::decode::{CsvDecoder, CsvParser};
pub use self::encode::CsvEncoder;
pub use self::options::{CsvFormat, QuoteStyle};
