#pragma once

#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "tests/support/process.h"

namespace warden::test {

struct SwtpmOptions {
  /// PCR banks to activate, swtpm_setup syntax ("sha256" or "sha1,sha256").
  std::string pcr_banks = "sha256";
  bool platform_cert = true;
};

/// A private software TPM for one test: its own state directory and certificate authority
/// (swtpm_localca, created in the test's temp directory), an RSA-2048 EK certificate at NV
/// 0x01C00002 and a P-384 one at 0x01C00016, a platform certificate at 0x01C08000, served on a free
/// port pair. The swtpm process dies with this object (or with the test process).
class Swtpm {
 public:
  /// Provisions and starts a TPM; throws std::runtime_error with swtpm's output on failure.
  static std::unique_ptr<Swtpm> start(const SwtpmOptions& options = {});
  ~Swtpm();
  Swtpm(const Swtpm&) = delete;
  Swtpm& operator=(const Swtpm&) = delete;

  /// TCTI configuration string for tpm2-tss ("swtpm:host=127.0.0.1,port=P").
  [[nodiscard]] std::string tcti() const;
  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] const std::filesystem::path& dir() const { return dir_.path(); }
  /// The root CA certificate (PEM) that anchors the EK certificate chain.
  [[nodiscard]] std::filesystem::path ca_cert() const;
  /// The intermediate CA certificate (PEM) that signed the EK certificates.
  [[nodiscard]] std::filesystem::path issuer_cert() const;
  /// DER EK certificates written by swtpm_setup: ek-rsa2048.crt, ek-secp384r1.crt.
  [[nodiscard]] std::filesystem::path ek_cert_dir() const;
  /// Environment for tpm2-tools pointed at this TPM.
  [[nodiscard]] std::map<std::string, std::string> tools_env() const;

  /// Kills the emulator (a lost TPM); restart() brings it back with the same state.
  void kill();
  void restart();
  /// Power cycle: TPM Reset (resetCount increments, PCRs clear, saved contexts die).
  void power_cycle();
  [[nodiscard]] bool running();

 private:
  Swtpm() = default;
  void launch();

  TempDir dir_{"warden-swtpm"};
  std::atomic<int> port_ = 0;  ///< a restart moves it while a test's other thread may read it
  ChildProcess process_;
};

/// Base fixture for integration tests: a fresh swtpm per test, stopped after it even on failure.
class SwtpmTest : public ::testing::Test {
 protected:
  void SetUp() override { tpm_ = Swtpm::start(options()); }
  void TearDown() override { tpm_.reset(); }
  virtual SwtpmOptions options() const { return {}; }

  std::unique_ptr<Swtpm> tpm_;
};

}  // namespace warden::test
