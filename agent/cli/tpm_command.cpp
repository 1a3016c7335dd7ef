// wardenctl tpm ...: inspect and drive the TPM through platform/tpm.
#include <cctype>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>

#include "agent/cli/commands.h"
#include "platform/base/encoding.h"
#include "platform/base/file.h"
#include "platform/base/openssl.h"
#include "platform/tpm/tools_format.h"
#include "platform/tpm/tpm.h"

namespace warden::cli {

namespace {

struct TpmOptions {
  std::string tcti = tpm::kDefaultTcti;
  std::string state;
  std::string pcrs;
  std::string nonce;
  std::string in;
  std::string out;
};

int report(const Error& error) {
  std::cerr << "wardenctl: " << error.message << "\n";
  return 1;
}

ByteSpan as_bytes(const std::string& s) {
  return ByteSpan(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
}

std::string upper_hex(ByteSpan data) {
  std::string hex = hex_encode(data);
  for (char& c : hex) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return hex;
}

Result<tpm::AkBlob> attestation_key(const tpm::Tpm& tpm, const TpmOptions& o) {
  if (o.state.empty()) return tpm.create_ak();
  return tpm.load_or_create_ak(o.state);
}

Result<PcrSelection> selection_or_active(const tpm::Tpm& tpm, const std::string& text) {
  if (text.empty()) return tpm.active_pcrs();
  return PcrSelection::parse(text);
}

int run_info(const TpmOptions& o) {
  tpm::Tpm tpm(o.tcti);
  auto info = tpm.info();
  if (!info) return report(info.error());
  std::cout << "manufacturer: " << info->manufacturer << "\n"
            << "vendor: " << info->vendor << "\n";
  char fw[32];
  std::snprintf(fw, sizeof fw, "%u.%u.%u.%u", static_cast<unsigned>(info->firmware_version >> 48),
                static_cast<unsigned>((info->firmware_version >> 32) & 0xffff),
                static_cast<unsigned>((info->firmware_version >> 16) & 0xffff),
                static_cast<unsigned>(info->firmware_version & 0xffff));
  std::cout << "firmware: " << fw << "\npcr banks:";
  for (TpmAlg bank : info->pcr_banks) std::cout << " " << hash_name(bank);
  std::cout << "\nalgorithms:";
  for (auto alg : info->algorithms) {
    char buf[12];
    std::snprintf(buf, sizeof buf, " 0x%04x", alg);
    std::cout << buf;
  }
  std::cout << "\ncurves:";
  for (auto curve : info->curves) {
    char buf[12];
    std::snprintf(buf, sizeof buf, " 0x%04x", curve);
    std::cout << buf;
  }
  std::cout << "\n";
  return 0;
}

int run_ek(const TpmOptions& o) {
  tpm::Tpm tpm(o.tcti);
  auto ek = tpm.endorsement_key();
  if (!ek) return report(ek.error());
  auto key = ossl::public_key_from_der(ek->public_key_der);
  if (!key) return report(key.error());
  auto key_pem = ossl::public_key_to_pem(key->get());
  if (!key_pem) return report(key_pem.error());
  auto cert = ossl::certificate_from_der(ek->certificate);
  if (!cert) return report(cert.error());
  auto cert_pem = ossl::certificate_to_pem(cert->get());
  if (!cert_pem) return report(cert_pem.error());
  char index[16];
  std::snprintf(index, sizeof index, "0x%08X", ek->cert_index);
  std::cout << "# EK certificate NV index " << index << "\n" << *key_pem << *cert_pem;
  for (const auto& der : ek->chain) {
    auto c = ossl::certificate_from_der(der);
    if (!c) return report(c.error());
    auto pem = ossl::certificate_to_pem(c->get());
    if (!pem) return report(pem.error());
    std::cout << *pem;
  }
  return 0;
}

int run_pcrs(const TpmOptions& o) {
  tpm::Tpm tpm(o.tcti);
  auto selection = selection_or_active(tpm, o.pcrs);
  if (!selection) return report(selection.error());
  auto values = tpm.read_pcrs(*selection);
  if (!values) return report(values.error());
  std::optional<TpmAlg> bank;
  for (const auto& v : *values) {
    if (!bank || *bank != v.alg) {
      bank = v.alg;
      std::cout << "  " << hash_name(v.alg) << ":\n";
    }
    std::string index = std::to_string(v.index);
    if (index.size() < 2) index += " ";
    std::cout << "    " << index << ": 0x" << upper_hex(v.digest) << "\n";
  }
  return 0;
}

int run_quote(const TpmOptions& o) {
  tpm::Tpm tpm(o.tcti);
  auto selection = PcrSelection::parse(o.pcrs);
  if (!selection) return report(selection.error());
  auto nonce = hex_decode(o.nonce);
  if (!nonce) return report(nonce.error().context("--nonce"));
  auto ak = attestation_key(tpm, o);
  if (!ak) return report(ak.error());
  auto quote = tpm.quote(*ak, *selection, *nonce);
  if (!quote) return report(quote.error());
  auto values = tpm.read_pcrs(*selection);
  if (!values) return report(values.error());
  auto pem = ak->public_key_pem();
  if (!pem) return report(pem.error());
  const std::filesystem::path dir(o.out);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return report(Error{ErrorCode::kIo, "create " + dir.string() + ": " + ec.message()});
  for (auto status :
       {write_file_atomic(dir / "quote.msg", quote->attest, 0644),
        write_file_atomic(dir / "quote.sig", quote->signature, 0644),
        write_file_atomic(dir / "ak.pub.pem", as_bytes(*pem), 0644),
        write_file_atomic(dir / "pcrs", tpm::tpm2_tools_pcrs_file(*selection, *values), 0644)}) {
    if (!status) return report(status.error());
  }
  return 0;
}

int run_seal(const TpmOptions& o) {
  tpm::Tpm tpm(o.tcti);
  auto selection = PcrSelection::parse(o.pcrs);
  if (!selection) return report(selection.error());
  auto secret = read_file(o.in, 128);
  if (!secret) return report(secret.error());
  SecretBytes owned(*secret);
  OPENSSL_cleanse(secret->data(), secret->size());
  auto blob = tpm.seal(*selection, owned.view());
  if (!blob) return report(blob.error());
  auto status = write_file_atomic(o.out, blob->serialize(), 0600);
  if (!status) return report(status.error());
  return 0;
}

int run_unseal(const TpmOptions& o) {
  tpm::Tpm tpm(o.tcti);
  auto data = read_file(o.in, 64 << 10);
  if (!data) return report(data.error());
  auto blob = tpm::SealedBlob::parse(*data);
  if (!blob) return report(blob.error().context(o.in));
  auto secret = tpm.unseal(*blob);
  if (!secret) return report(secret.error());
  auto status = write_file_atomic(o.out, secret->view(), 0600);
  if (!status) return report(status.error());
  return 0;
}

// The required options of each subcommand, for its --help example.
std::string tpm_example_args(std::string_view name) {
  if (name == "pcrs") return " --pcrs sha256:0-7";
  if (name == "quote") return " --pcrs sha256:0-7 --nonce 00112233 --out quote/";
  if (name == "seal") return " --pcrs sha256:16 --in secret --out secret.sealed";
  if (name == "unseal") return " --in secret.sealed --out secret";
  return "";
}

}  // namespace

void register_tpm_commands(CLI::App& app, CommandResult& result) {
  auto options = std::make_shared<TpmOptions>();
  CLI::App* group = app.add_subcommand("tpm", "Inspect and use the TPM");
  group->require_subcommand(1);
  group
      ->add_option("--tcti", options->tcti,
                   "TCTI: device:/dev/tpmrm0, tabrmd, swtpm:host=H,port=P, mssim:...")
      ->envname("WARDEN_TCTI")
      ->capture_default_str();
  group->add_option("--state", options->state,
                    "State directory holding the AK (without it keys are ephemeral)");

  group->footer("Example:\n  wardenctl tpm info --tcti swtpm:host=127.0.0.1,port=2321");
  auto add = [&](const char* name, const char* help, int (*run)(const TpmOptions&)) {
    CLI::App* sub = group->add_subcommand(name, help);
    sub->footer(std::string("Example:\n  wardenctl tpm ") + name + " --tcti device:/dev/tpmrm0" +
                tpm_example_args(name));
    sub->fallthrough();  // `tpm quote --tcti X` as well as `tpm --tcti X quote`
    sub->callback([options, run, &result] { result.exit_code = run(*options); });
    return sub;
  };
  add("info", "Manufacturer, firmware, PCR banks, algorithms and curves", run_info);
  add("ek", "EK public key and certificate (PEM)", run_ek);
  add("pcrs", "Read PCRs (tpm2_pcrread layout)", run_pcrs)
      ->add_option("--pcrs", options->pcrs, "Selection, e.g. sha256:0,1,2 (default: all)");
  CLI::App* quote =
      add("quote", "Quote PCRs with the AK (tpm2_checkquote-compatible files)", run_quote);
  quote->add_option("--pcrs", options->pcrs, "Selection, e.g. sha256:0-7")->required();
  quote->add_option("--nonce", options->nonce, "Qualifying data (hex)")->required();
  quote->add_option("--out", options->out, "Directory for quote.msg, quote.sig, ak.pub.pem, pcrs")
      ->required();
  CLI::App* seal = add("seal", "Seal up to 128 bytes to the current PCR values", run_seal);
  seal->add_option("--pcrs", options->pcrs, "Selection, e.g. sha256:16")->required();
  seal->add_option("--in", options->in, "Secret file")->required();
  seal->add_option("--out", options->out, "Sealed blob file")->required();
  CLI::App* unseal = add("unseal", "Unseal a blob made by `tpm seal`", run_unseal);
  unseal->add_option("--in", options->in, "Sealed blob file")->required();
  unseal->add_option("--out", options->out, "Secret file")->required();
}

}  // namespace warden::cli
