# Choices that change how fast the tree builds, never what it does (docs/testing.md, "Build
# time"): lld instead of ld.bfd, how much debug information the compiler writes, and the
# precompiled headers of the Beast-, JSON- and CLI11-heavy targets.
include(CheckLinkerFlag)

option(WARDEN_LLD "Link with lld when the compiler accepts -fuse-ld=lld" ON)
if(WARDEN_LLD)
  check_linker_flag(CXX -fuse-ld=lld WARDEN_HAVE_LLD)
  if(WARDEN_HAVE_LLD)
    add_link_options(-fuse-ld=lld)
  endif()
endif()

# full: -g as CMake's build types set it (gdb sees variables); lines: line tables only, enough
# for sanitizer reports, backtraces and perf (scripts/bootstrap's choice); none.
set(WARDEN_DEBUG_INFO "full" CACHE STRING "Debug information: full, lines or none")
set_property(CACHE WARDEN_DEBUG_INFO PROPERTY STRINGS full lines none)
if(NOT WARDEN_DEBUG_INFO STREQUAL "full")
  if(WARDEN_DEBUG_INFO STREQUAL "lines")
    if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
      set(warden_g "-gline-tables-only")
    else()
      set(warden_g "-g1")
    endif()
  elseif(WARDEN_DEBUG_INFO STREQUAL "none")
    set(warden_g "")
  else()
    message(FATAL_ERROR "WARDEN_DEBUG_INFO: expected full, lines or none, found ${WARDEN_DEBUG_INFO}")
  endif()
  foreach(lang C CXX)
    foreach(config RELWITHDEBINFO DEBUG)
      string(REGEX REPLACE "(^| )-g( |$)" " ${warden_g} " CMAKE_${lang}_FLAGS_${config}
                           "${CMAKE_${lang}_FLAGS_${config}}")
    endforeach()
  endforeach()
endif()

option(WARDEN_PCH "Precompile the heavy third-party headers of the targets that use them" ON)

# warden_precompile(<target> <header>...): the headers, precompiled once for the target.
function(warden_precompile target)
  if(WARDEN_PCH)
    target_precompile_headers(${target} PRIVATE ${ARGN})
  endif()
endfunction()
