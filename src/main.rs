fn main() {
    std::process::exit(lvscheck::cli::run());
}
