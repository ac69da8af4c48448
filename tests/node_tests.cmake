# berth_node_tests(<suite> <default-labels> <timeout-seconds>)
#
# Registers every <suite>/*.test.mjs of the calling directory as one ctest
# named <suite>.<file stem>, run as `node --test <file>` from tests/ with
# BERTHD (the built daemon) and BERTH_SOURCE_DIR in its environment.
#
# Labels: <suite> plus the ones a `// ctest-labels: a b` line near the top of
# the file names; a file without that line gets <default-labels>. Tests
# labelled docker take RESOURCE_LOCK docker, since they share the Engine.
# Node modules come from `npm ci --prefix tests`.
include_guard(GLOBAL)

find_program(NODE_EXECUTABLE node)

function(berth_node_tests suite default_labels timeout)
  if(NOT NODE_EXECUTABLE)
    message(STATUS "node not found: ${suite} tests are not registered")
    return()
  endif()
  if(NOT EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/../node_modules)
    message(STATUS "tests/node_modules missing: run `npm ci --prefix tests` before ctest")
  endif()
  file(GLOB files CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.test.mjs)
  foreach(f ${files})
    get_filename_component(fname ${f} NAME)
    string(REGEX REPLACE "\\.test\\.mjs$" "" stem ${fname})
    # Re-run configure when the file (and so maybe its labels) changes.
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${f})
    file(STRINGS ${f} marker LIMIT_COUNT 1 REGEX "^// ctest-labels:")
    if(marker)
      string(REGEX REPLACE "^// ctest-labels:[ \t]*" "" extra "${marker}")
      string(STRIP "${extra}" extra)
      string(REGEX REPLACE "[ \t,]+" ";" extra "${extra}")
    else()
      set(extra ${default_labels})
    endif()
    set(labels ${suite} ${extra})
    list(REMOVE_DUPLICATES labels)
    set(name ${suite}.${stem})
    add_test(NAME ${name}
             COMMAND ${NODE_EXECUTABLE} --test ${f}
             WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/..)
    set_tests_properties(${name} PROPERTIES
      ENVIRONMENT "BERTHD=$<TARGET_FILE:berthd>;BERTH_SOURCE_DIR=${CMAKE_SOURCE_DIR}"
      TIMEOUT ${timeout}
      LABELS "${labels}")
    if("docker" IN_LIST labels)
      set_tests_properties(${name} PROPERTIES RESOURCE_LOCK docker)
    endif()
  endforeach()
endfunction()
