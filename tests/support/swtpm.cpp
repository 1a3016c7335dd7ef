#include "tests/support/swtpm.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <fstream>
#include <stdexcept>
#include <unistd.h>

namespace warden::test {
namespace fs = std::filesystem;

namespace {

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  if (!out) throw std::runtime_error("write " + path.string());
}

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

bool can_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;  // NOLINT
  close(fd);
  return ok;
}

}  // namespace

std::unique_ptr<Swtpm> Swtpm::start(const SwtpmOptions& options) {
  std::unique_ptr<Swtpm> tpm(new Swtpm());
  const fs::path& w = tpm->dir();
  fs::create_directories(w / "ca");
  fs::create_directories(w / "state");
  fs::create_directories(w / "certs");
  write_text(w / "ca/swtpm-localca.conf",
             "statedir = " + (w / "ca").string() +
                 "\nsigningkey = " + (w / "ca/signkey.pem").string() +
                 "\nissuercert = " + (w / "ca/issuercert.pem").string() +
                 "\ncertserial = " + (w / "ca/certserial").string() + "\n");
  write_text(w / "ca/swtpm-localca.options",
             "--platform-manufacturer Warden\n--platform-version 2.1\n--platform-model swtpm\n");
  write_text(w / "ca/swtpm_setup.conf",
             "create_certs_tool = /usr/bin/swtpm_localca\ncreate_certs_tool_config = " +
                 (w / "ca/swtpm-localca.conf").string() + "\ncreate_certs_tool_options = " +
                 (w / "ca/swtpm-localca.options").string() + "\n");
  std::vector<std::string> setup = {"swtpm_setup",
                                    "--tpm2",
                                    "--tpmstate",
                                    (w / "state").string(),
                                    "--config",
                                    (w / "ca/swtpm_setup.conf").string(),
                                    "--create-ek-cert",
                                    "--pcr-banks",
                                    options.pcr_banks,
                                    "--write-ek-cert-files",
                                    (w / "certs").string(),
                                    "--overwrite"};
  if (options.platform_cert) setup.emplace_back("--create-platform-cert");
  // swtpm_setup and swtpm_localca read ~/.config; keep them inside the test directory.
  std::map<std::string, std::string> env = {{"XDG_CONFIG_HOME", (w / "ca").string()},
                                            {"HOME", w.string()}};
  CommandOutput out = run_command(setup, env, std::chrono::seconds(120));
  if (out.exit_code != 0) throw std::runtime_error("swtpm_setup failed:\n" + out.out);
  tpm->launch();
  return tpm;
}

void Swtpm::launch() {
  // Concurrent tests may race for the same free port; swtpm then exits at once and we retry.
  for (int attempt = 0; attempt < 20; ++attempt) {
    const int port = free_tcp_port(/*pair=*/true);
    port_ = port;
    fs::path log = dir() / "swtpm.log";
    process_ = ChildProcess::spawn(
        {"swtpm", "socket", "--tpm2", "--tpmstate", "dir=" + (dir() / "state").string(), "--server",
         "type=tcp,port=" + std::to_string(port) + ",bindaddr=127.0.0.1", "--ctrl",
         "type=tcp,port=" + std::to_string(port + 1) + ",bindaddr=127.0.0.1", "--flags",
         "not-need-init,startup-clear"},
        {}, log);
    // Both sockets: swtpm may listen on the control port before the server port.
    bool up = wait_for(
        [&] { return !process_.running() || (can_connect(port + 1) && can_connect(port)); },
        std::chrono::seconds(10));
    if (up && process_.running()) return;
    process_.stop();
  }
  throw std::runtime_error("swtpm did not start:\n" + read_text(dir() / "swtpm.log"));
}

Swtpm::~Swtpm() { process_.stop(); }

std::string Swtpm::tcti() const { return "swtpm:host=127.0.0.1,port=" + std::to_string(port_); }
fs::path Swtpm::ca_cert() const { return dir() / "ca/swtpm-localca-rootca-cert.pem"; }
fs::path Swtpm::issuer_cert() const { return dir() / "ca/issuercert.pem"; }
fs::path Swtpm::ek_cert_dir() const { return dir() / "certs"; }
std::map<std::string, std::string> Swtpm::tools_env() const { return {{"TPM2TOOLS_TCTI", tcti()}}; }

void Swtpm::kill() { process_.stop(9); }
void Swtpm::restart() {
  process_.stop();
  launch();
}
bool Swtpm::running() { return process_.running(); }

void Swtpm::power_cycle() {
  std::string ctrl = "127.0.0.1:" + std::to_string(port_ + 1);
  CommandOutput off = run_command({"swtpm_ioctl", "--tcp", ctrl, "-i"});
  if (off.exit_code != 0) throw std::runtime_error("swtpm_ioctl -i failed: " + off.out);
  CommandOutput up = run_command({"tpm2_startup", "-c"}, tools_env());
  if (up.exit_code != 0) throw std::runtime_error("tpm2_startup -c failed: " + up.out);
}

}  // namespace warden::test
