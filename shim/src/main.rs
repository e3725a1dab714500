fn main() { runtime_core::init::main_if_helper(); }
