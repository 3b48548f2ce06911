fn main() {
    println!("xdptcp");
}
