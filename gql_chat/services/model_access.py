"""Model access: each role's allow-list from the settings, or the one an admin set for a user.

Every path that picks a model asks `require` with the model it picked (a send's input, preset,
conversation preset, user default or the default setting; a saved preset); the model list
shows only what `allows`."""

from __future__ import annotations

from collections.abc import Iterable

from gql_chat.config import Settings
from gql_chat.domain.model_access import ModelPatterns, parse_patterns
from gql_chat.domain.users import Role, UserRecord
from gql_chat.errors import Forbidden
from gql_chat.llm.types import ModelInfo


class ModelAccess:
    def __init__(self, settings: Settings) -> None:
        self._by_role = {
            Role.USER: parse_patterns(settings.models_allowed_user),
            Role.ADMIN: parse_patterns(settings.models_allowed_admin),
        }

    def patterns_for(self, user: UserRecord) -> ModelPatterns:
        return user.allowed_models if user.allowed_models is not None else self._by_role[user.role]

    def allows(self, user: UserRecord, model: str) -> bool:
        return self.patterns_for(user).allows(model)

    def require(self, user: UserRecord, model: str) -> None:
        """Raises FORBIDDEN (`field: model`) unless `user` may use `model`."""
        if not self.allows(user, model):
            raise Forbidden(
                f"The model {model[:200]} is not available to your account.", field="model"
            )

    def visible(self, user: UserRecord, models: Iterable[ModelInfo]) -> list[ModelInfo]:
        patterns = self.patterns_for(user)
        return [model for model in models if patterns.allows(model.id)]
