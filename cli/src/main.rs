//! `fhir-smart-authz` command-line tool: the filter's exact decision offline
//! (native only; it depends on the core, never on the proxy-wasm shell).

mod commands;
mod response;
mod secrets;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = commands::run(
        &args,
        &mut std::io::stdin().lock(),
        &mut std::io::stdout().lock(),
    );
    std::process::exit(code);
}
