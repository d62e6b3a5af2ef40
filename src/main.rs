//! The `ketch` command line.

fn main() {
    println!("ketch");
}
