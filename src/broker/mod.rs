pub mod log_writer;
