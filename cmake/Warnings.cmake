# Project-wide compile flags: strict warnings and hardening. Applied through an interface
# target so that third-party code pulled in by find_package is not affected.
add_library(warden_flags INTERFACE)
target_compile_options(warden_flags INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion
  -Wnon-virtual-dtor -Wold-style-cast -Woverloaded-virtual
  -fstack-protector-strong)
if(WARDEN_WERROR)
  target_compile_options(warden_flags INTERFACE -Werror)
endif()
if(NOT WARDEN_SANITIZE AND NOT WARDEN_FUZZ AND NOT WARDEN_TSAN)
  target_compile_definitions(warden_flags INTERFACE
    $<$<NOT:$<CONFIG:Debug>>:_FORTIFY_SOURCE=2>)
endif()
target_link_options(warden_flags INTERFACE -Wl,-z,relro,-z,now -Wl,--as-needed)

if(WARDEN_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer
                      -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()
if(WARDEN_TSAN)
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
endif()
if(WARDEN_FUZZ)
  # With WARDEN_SANITIZE the fuzz targets share that build: only the coverage instrumentation.
  add_compile_options(-fsanitize=fuzzer-no-link)
  if(NOT WARDEN_SANITIZE)
    add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer)
    add_link_options(-fsanitize=address,undefined)
  endif()
endif()
if((WARDEN_SANITIZE OR WARDEN_FUZZ) AND CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  # clang 14 cannot emit -fsanitize=function's prologue data for split coroutines
  # ("Cannot represent a difference across sections" in the Beast servers). After every
  # -fsanitize=undefined above, or that one turns it back on.
  add_compile_options(-fno-sanitize=function)
endif()
