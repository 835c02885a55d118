using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Floodgate.Gateway.Admin;

/// <summary>The admin API's error answers: problem+json bodies that name the field at fault.</summary>
internal static class AdminProblems
{
    /// <summary>400: <paramref name="field"/> is invalid, for <paramref name="message"/>.</summary>
    public static ValidationProblem BadField(string field, string message) =>
        TypedResults.ValidationProblem(
            new Dictionary<string, string[]> { [field] = [message] },
            detail: $"{field}: {message}",
            title: "The request is invalid.");

    /// <summary>404: nothing is stored under what the request names.</summary>
    public static ProblemHttpResult NotFound(string detail) =>
        TypedResults.Problem(detail: detail, statusCode: StatusCodes.Status404NotFound, title: "Not found.");
}
