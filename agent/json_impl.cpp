// THE one translation unit that compiles Boost.JSON's implementation for the agent library.
// Boost.JSON is header-only only when <boost/json/src.hpp> is included in exactly one TU of the
// final link. NOTE FOR MERGE: attest/token has its own copy; keep exactly one per executable.
#include <boost/json/src.hpp>
